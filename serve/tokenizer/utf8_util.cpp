#include "serve/tokenizer/utf8_util.h"

#include <cstring>

#include <utf8proc.h>

namespace ds::tok {
namespace {

// Number of continuation bytes accepted after `lead` and the allowed range of
// the first one (later ones are always 80..BF). Returns false for a byte that
// can never start a sequence.
bool lead_info(unsigned char lead, int* extra, unsigned char* lo, unsigned char* hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) { *extra = 1; return true; }
  if (lead == 0xE0) { *extra = 2; *lo = 0xA0; return true; }
  if (lead >= 0xE1 && lead <= 0xEC) { *extra = 2; return true; }
  if (lead == 0xED) { *extra = 2; *hi = 0x9F; return true; }
  if (lead == 0xEE || lead == 0xEF) { *extra = 2; return true; }
  if (lead == 0xF0) { *extra = 3; *lo = 0x90; return true; }
  if (lead >= 0xF1 && lead <= 0xF3) { *extra = 3; return true; }
  if (lead == 0xF4) { *extra = 3; *hi = 0x8F; return true; }
  return false;
}

// Length of the valid sequence at p[0..n) (>0), or -k where k >= 1 is the
// length of the maximal ill-formed subpart, or 0 if the input ends inside a
// sequence that is valid so far.
int classify(const unsigned char* p, size_t n) {
  if (p[0] < 0x80) return 1;
  int extra;
  unsigned char lo, hi;
  if (!lead_info(p[0], &extra, &lo, &hi)) return -1;
  for (int k = 1; k <= extra; ++k) {
    if (static_cast<size_t>(k) >= n) return 0;
    const unsigned char c = p[k];
    const bool ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) return -k;
  }
  return extra + 1;
}

ByteLevelTables make_tables() {
  ByteLevelTables t;
  t.cp_to_byte.fill(-1);
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    t.byte_to_cp[b] = printable ? char32_t(b) : char32_t(256 + n++);
  }
  for (int b = 0; b < 256; ++b) t.cp_to_byte[t.byte_to_cp[b]] = static_cast<int16_t>(b);
  return t;
}

}  // namespace

bool utf8_valid(std::string_view s, size_t* error_offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if ((w & 0x8080808080808080ULL) == 0) { i += 8; continue; }
    }
    const int r = classify(p + i, n - i);
    if (r <= 0) {
      if (error_offset) *error_offset = i;
      return false;
    }
    i += static_cast<size_t>(r);
  }
  return true;
}

void utf8_append(std::string* out, char32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t utf8_last(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  char32_t cp;
  utf8_decode(s, i, &cp);
  return cp;
}

bool is_unicode_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

bool is_word_char(char32_t c) {
  if (c < 0x80) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  }
  if (c == 0x200C || c == 0x200D) return true;  // Join_Control
  // Other_Alphabetic symbols (circled / squared Latin letters).
  if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
      (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189)) {
    return true;
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

const ByteLevelTables& byte_level_tables() {
  static const ByteLevelTables tables = make_tables();
  return tables;
}

std::string byte_level_encode(std::string_view bytes) {
  const auto& t = byte_level_tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) utf8_append(&out, t.byte_to_cp[b]);
  return out;
}

void byte_level_decode_append(std::string_view token, std::string* out) {
  const auto& t = byte_level_tables();
  const size_t start = out->size();
  size_t i = 0;
  while (i < token.size()) {
    char32_t cp;
    i += utf8_decode(token, i, &cp);
    if (cp >= 512 || t.cp_to_byte[cp] < 0) {
      out->resize(start);
      out->append(token);
      return;
    }
    out->push_back(static_cast<char>(t.cp_to_byte[cp]));
  }
}

size_t utf8_lossy_append(std::string_view in, bool final, std::string* out) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const size_t n = in.size();
  size_t i = 0;
  size_t run = 0;  // start of the pending run of valid bytes
  while (i < n) {
    const int r = classify(p + i, n - i);
    if (r > 0) {
      i += static_cast<size_t>(r);
      continue;
    }
    out->append(in.data() + run, i - run);
    if (r == 0) {  // truncated sequence at the end
      if (!final) return i;
      out->append(kReplacement, 3);
      return n;
    }
    out->append(kReplacement, 3);
    i += static_cast<size_t>(-r);
    run = i;
  }
  out->append(in.data() + run, n - run);
  return n;
}

}  // namespace ds::tok
