#include "serve/tokenizer/normalizer.h"

#include <cstdint>
#include <cstdlib>

#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include "serve/tokenizer/utf8_util.h"

namespace ds::tok {
namespace {

using json = nlohmann::json;

bool all_below(std::string_view s, unsigned char limit) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= limit) return false;
  }
  return true;
}

Status unicode_normalize(std::string_view in, int options, std::string* out) {
  utf8proc_uint8_t* dst = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(in.data()),
                   static_cast<utf8proc_ssize_t>(in.size()), &dst,
                   static_cast<utf8proc_option_t>(options));
  if (n < 0) {
    std::free(dst);
    return Status::Error(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
  }
  out->assign(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
  std::free(dst);
  return Status::Ok();
}

Result<std::string> get_string(const json& j, const char* key, const std::string& what) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return Status::Error(StrCat() << what << ": missing string field '" << key << "'");
  }
  return it->get<std::string>();
}

// A character before which NFC may cut the text: a starter that can never be
// the second character of a canonical composition. Scripts with such
// characters (Indic, Myanmar, Hangul jamo, Balinese, Brahmic) are excluded
// wholesale; everything else only needs combining class 0.
bool nfc_boundary(char32_t cp, const utf8proc_property_t* p) {
  if (p->combining_class != 0) return false;
  return !((cp >= 0x0900 && cp <= 0x0DFF) || (cp >= 0x1000 && cp <= 0x109F) ||
           (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0x1B00 && cp <= 0x1B7F) ||
           (cp >= 0xA960 && cp <= 0xA97F) || (cp >= 0xD7B0 && cp <= 0xD7FF) ||
           (cp >= 0x11000 && cp <= 0x11FFF));
}

// NFC of `in`: text between boundaries normalizes independently, so only
// the segments holding a character that NFC might change (a non-starter, a
// canonical decomposition or a non-boundary character) go through utf8proc.
Status nfc(std::string_view in, std::string* out) {
  size_t seg = 0;       // start of the current segment
  bool dirty = false;   // the segment needs normalization
  auto flush = [&](size_t end) -> Status {
    if (end == seg) return Status::Ok();
    if (!dirty) {
      out->append(in.substr(seg, end - seg));
      return Status::Ok();
    }
    std::string part;
    DS_RETURN_IF_ERROR(unicode_normalize(in.substr(seg, end - seg), UTF8PROC_STABLE | UTF8PROC_COMPOSE, &part));
    out->append(part);
    return Status::Ok();
  };
  size_t i = 0;
  while (i < in.size()) {
    const auto b = static_cast<unsigned char>(in[i]);
    if (b < 0xCC) {  // below U+0300: a clean boundary
      if (i != seg) DS_RETURN_IF_ERROR(flush(i));
      seg = i;
      dirty = false;
      i += utf8_len(b);
      continue;
    }
    char32_t cp;
    const size_t len = utf8_decode(in, i, &cp);
    const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp));
    const bool canonical_decomposition = p->decomp_type == 0 && p->decomp_seqindex != UINT16_MAX;
    if (nfc_boundary(cp, p)) {
      DS_RETURN_IF_ERROR(flush(i));
      seg = i;
      dirty = canonical_decomposition;
    } else {
      dirty = true;
    }
    i += len;
  }
  return flush(in.size());
}

}  // namespace

Result<Normalizer> Normalizer::from_json(const json& j, const std::string& what) {
  Normalizer n;
  if (j.is_null()) return n;
  DS_RETURN_IF_ERROR(add(j, what, &n.steps_));
  return n;
}

Status Normalizer::add(const json& j, const std::string& what, std::vector<Step>* steps) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return Status::Error(what + ": expected an object with a string 'type'");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) return Status::Error(what + ": Sequence without 'normalizers' array");
    for (size_t i = 0; i < it->size(); ++i) {
      DS_RETURN_IF_ERROR(add((*it)[i], StrCat() << what << ".normalizers[" << i << "]", steps));
    }
    return Status::Ok();
  }
  Step step;
  if (type == "NFC") {
    step.kind = Kind::kNfc;
  } else if (type == "NFD") {
    step.kind = Kind::kNfd;
  } else if (type == "NFKC") {
    step.kind = Kind::kNfkc;
  } else if (type == "NFKD") {
    step.kind = Kind::kNfkd;
  } else if (type == "Lowercase") {
    step.kind = Kind::kLowercase;
  } else if (type == "Prepend") {
    step.kind = Kind::kPrepend;
    DS_ASSIGN_OR_RETURN(step.text, get_string(j, "prepend", what));
  } else if (type == "Strip") {
    step.kind = Kind::kStrip;
    step.left = j.value("strip_left", false);
    step.right = j.value("strip_right", false);
  } else if (type == "Replace") {
    step.kind = Kind::kReplace;
    DS_ASSIGN_OR_RETURN(step.content, get_string(j, "content", what));
    auto p = j.find("pattern");
    if (p == j.end() || !p->is_object()) return Status::Error(what + ": Replace without 'pattern'");
    if (p->contains("String") && (*p)["String"].is_string()) {
      step.text = (*p)["String"].get<std::string>();
    } else if (p->contains("Regex") && (*p)["Regex"].is_string()) {
      DS_ASSIGN_OR_RETURN(Regex re, Regex::compile((*p)["Regex"].get<std::string>(), what + ".pattern"));
      step.regex.emplace(std::move(re));
    } else {
      return Status::Error(what + ": Replace pattern must be {\"String\": ...} or {\"Regex\": ...}");
    }
  } else {
    return Status::Error(StrCat() << what << ": unsupported normalizer type '" << type << "'");
  }
  steps->push_back(std::move(step));
  return Status::Ok();
}

Status Normalizer::normalize(std::string_view in, std::string* out) const {
  out->assign(in);
  std::string tmp;
  for (const Step& step : steps_) {
    tmp.clear();
    DS_RETURN_IF_ERROR(apply(step, *out, &tmp));
    out->swap(tmp);
  }
  return Status::Ok();
}

Status Normalizer::apply(const Step& step, std::string_view in, std::string* out) {
  switch (step.kind) {
    case Kind::kNfc:
      // Text below U+0300 is always in NFC (lead bytes < 0xCC).
      if (all_below(in, 0xCC)) { out->assign(in); return Status::Ok(); }
      return nfc(in, out);
    case Kind::kNfd:
      if (all_below(in, 0x80)) { out->assign(in); return Status::Ok(); }
      return unicode_normalize(in, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, out);
    case Kind::kNfkc:
      if (all_below(in, 0x80)) { out->assign(in); return Status::Ok(); }
      return unicode_normalize(in, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out);
    case Kind::kNfkd:
      if (all_below(in, 0x80)) { out->assign(in); return Status::Ok(); }
      return unicode_normalize(in, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, out);
    case Kind::kLowercase: {
      // Rust char::to_lowercase: simple mappings plus U+0130 -> "i\u0307".
      size_t i = 0;
      while (i < in.size()) {
        char32_t cp;
        i += utf8_decode(in, i, &cp);
        if (cp == 0x130) {
          out->append("i\xCC\x87");
        } else {
          utf8_append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
        }
      }
      return Status::Ok();
    }
    case Kind::kPrepend:
      if (!in.empty()) out->append(step.text);
      out->append(in);
      return Status::Ok();
    case Kind::kStrip: {
      size_t b = 0, e = in.size();
      while (step.left && b < e) {
        char32_t cp;
        const size_t len = utf8_decode(in, b, &cp);
        if (!is_unicode_space(cp)) break;
        b += len;
      }
      while (step.right && e > b) {
        const char32_t cp = utf8_last(in.substr(b, e - b));
        if (!is_unicode_space(cp)) break;
        size_t len = 1;
        while ((static_cast<unsigned char>(in[e - len]) & 0xC0) == 0x80) ++len;
        e -= len;
      }
      out->append(in.substr(b, e - b));
      return Status::Ok();
    }
    case Kind::kReplace: {
      if (step.regex) {
        std::vector<std::pair<size_t, size_t>> m;
        DS_RETURN_IF_ERROR(step.regex->find_all(in, &m));
        size_t prev = 0;
        for (auto [b, e] : m) {
          out->append(in.substr(prev, b - prev));
          out->append(step.content);
          prev = e;
        }
        out->append(in.substr(prev));
        return Status::Ok();
      }
      if (step.text.empty()) { out->append(in); return Status::Ok(); }
      size_t prev = 0;
      for (size_t p = in.find(step.text); p != std::string_view::npos; p = in.find(step.text, prev)) {
        out->append(in.substr(prev, p - prev));
        out->append(step.content);
        prev = p + step.text.size();
      }
      out->append(in.substr(prev));
      return Status::Ok();
    }
  }
  return Status::Ok();
}

}  // namespace ds::tok
