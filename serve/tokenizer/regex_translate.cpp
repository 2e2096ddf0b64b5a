#include "serve/tokenizer/regex_translate.h"

#include <array>
#include <cstdio>

#include <pcre2.h>
#include <utf8proc.h>

#include "serve/tokenizer/utf8_util.h"

namespace ds::tok {
namespace {

constexpr std::string_view kWhiteSpace =
    "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

// Oniguruma's \w (Unicode Word: alphabetic, marks, decimal digits, connector
// punctuation, join controls); PCRE2's is letters, all numbers and '_'.
constexpr std::string_view kWord =
    "\\p{L}\\p{M}\\p{Nd}\\p{Nl}\\p{Pc}\\x{200C}\\x{200D}\\x{24B6}-\\x{24E9}"
    "\\x{1F130}-\\x{1F149}\\x{1F150}-\\x{1F169}\\x{1F170}-\\x{1F189}";
// Oniguruma's \h is a hexadecimal digit (PCRE2's: horizontal space).
constexpr std::string_view kHex = "0-9a-fA-F";

// Per utf8proc category: class fragment ("\x{A}-\x{B}...") of the code points
// PCRE2 sees as unassigned (\p{Cn}) but utf8proc assigns to that category.
using Fragments = std::array<std::string, 32>;

Fragments compute_newer_assignments() {
  Fragments out;
  int err = 0;
  PCRE2_SIZE off = 0;
  static constexpr char kCn[] = "\\p{Cn}";
  pcre2_code* cn = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kCn), sizeof(kCn) - 1,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &err, &off, nullptr);
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  if (cn == nullptr || md == nullptr) {
    pcre2_code_free(cn);
    pcre2_match_data_free(md);
    return out;
  }
  const bool jit = pcre2_jit_compile(cn, PCRE2_JIT_COMPLETE) == 0;
  std::array<int64_t, 32> run_start, run_end;
  run_start.fill(-1);
  run_end.fill(-1);
  auto close = [&](int cat) {
    if (run_start[cat] < 0) return;
    char buf[48];
    if (run_start[cat] == run_end[cat]) {
      std::snprintf(buf, sizeof(buf), "\\x{%llX}", static_cast<unsigned long long>(run_start[cat]));
    } else {
      std::snprintf(buf, sizeof(buf), "\\x{%llX}-\\x{%llX}", static_cast<unsigned long long>(run_start[cat]),
                    static_cast<unsigned long long>(run_end[cat]));
    }
    out[cat] += buf;
    run_start[cat] = -1;
  };
  std::string s;
  for (char32_t cp = 0x80; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    const int cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
    if (cat == UTF8PROC_CATEGORY_CN || cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CS) continue;
    s.clear();
    utf8_append(&s, cp);
    const auto* subj = reinterpret_cast<PCRE2_SPTR>(s.data());
    const int rc = jit ? pcre2_jit_match(cn, subj, s.size(), 0, 0, md, nullptr)
                       : pcre2_match(cn, subj, s.size(), 0, 0, md, nullptr);
    if (rc < 0) continue;  // PCRE2 knows this character
    if (run_start[cat] >= 0 && run_end[cat] + 1 == static_cast<int64_t>(cp)) {
      run_end[cat] = cp;
    } else {
      close(cat);
      run_start[cat] = run_end[cat] = cp;
    }
  }
  for (int cat = 0; cat < 32; ++cat) close(cat);
  pcre2_match_data_free(md);
  pcre2_code_free(cn);
  return out;
}

const Fragments& newer_assignments() {
  static const Fragments f = compute_newer_assignments();
  return f;
}

// utf8proc categories of a general category property name, or {} if the
// name is not one (scripts and other properties are left alone).
std::string extra_for_property(std::string_view name) {
  static constexpr struct {
    std::string_view name;
    int first, last;
  } kGroups[] = {
      {"L", UTF8PROC_CATEGORY_LU, UTF8PROC_CATEGORY_LO}, {"M", UTF8PROC_CATEGORY_MN, UTF8PROC_CATEGORY_ME},
      {"N", UTF8PROC_CATEGORY_ND, UTF8PROC_CATEGORY_NO}, {"P", UTF8PROC_CATEGORY_PC, UTF8PROC_CATEGORY_PO},
      {"S", UTF8PROC_CATEGORY_SM, UTF8PROC_CATEGORY_SO}, {"Z", UTF8PROC_CATEGORY_ZS, UTF8PROC_CATEGORY_ZP},
      {"Lu", UTF8PROC_CATEGORY_LU, UTF8PROC_CATEGORY_LU}, {"Ll", UTF8PROC_CATEGORY_LL, UTF8PROC_CATEGORY_LL},
      {"Lt", UTF8PROC_CATEGORY_LT, UTF8PROC_CATEGORY_LT}, {"Lm", UTF8PROC_CATEGORY_LM, UTF8PROC_CATEGORY_LM},
      {"Lo", UTF8PROC_CATEGORY_LO, UTF8PROC_CATEGORY_LO}, {"Mn", UTF8PROC_CATEGORY_MN, UTF8PROC_CATEGORY_MN},
      {"Mc", UTF8PROC_CATEGORY_MC, UTF8PROC_CATEGORY_MC}, {"Me", UTF8PROC_CATEGORY_ME, UTF8PROC_CATEGORY_ME},
      {"Nd", UTF8PROC_CATEGORY_ND, UTF8PROC_CATEGORY_ND}, {"Nl", UTF8PROC_CATEGORY_NL, UTF8PROC_CATEGORY_NL},
      {"No", UTF8PROC_CATEGORY_NO, UTF8PROC_CATEGORY_NO}, {"Po", UTF8PROC_CATEGORY_PO, UTF8PROC_CATEGORY_PO},
      {"Sm", UTF8PROC_CATEGORY_SM, UTF8PROC_CATEGORY_SM}, {"Sc", UTF8PROC_CATEGORY_SC, UTF8PROC_CATEGORY_SC},
      {"Sk", UTF8PROC_CATEGORY_SK, UTF8PROC_CATEGORY_SK}, {"So", UTF8PROC_CATEGORY_SO, UTF8PROC_CATEGORY_SO},
  };
  for (const auto& g : kGroups) {
    if (g.name != name) continue;
    std::string extra;
    for (int c = g.first; c <= g.last; ++c) extra += newer_assignments()[c];
    return extra;
  }
  return {};
}

}  // namespace

std::string onig_to_pcre2(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  bool literal = false;  // inside \Q...\E
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (literal) {
      out.push_back(c);
      if (c == '\\' && i + 1 < p.size() && p[i + 1] == 'E') {
        out.push_back('E');
        ++i;
        literal = false;
      }
      continue;
    }
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[++i];
      if (e == 's') {
        if (in_class) {
          out.append(kWhiteSpace);
        } else {
          out.append("[").append(kWhiteSpace).append("]");
        }
      } else if (e == 'S' && !in_class) {
        out.append("[^").append(kWhiteSpace).append("]");
      } else if (e == 'w' || e == 'h') {
        const std::string_view set = e == 'w' ? kWord : kHex;
        if (in_class) {
          out.append(set);
        } else {
          out.append("[").append(set).append("]");
        }
      } else if ((e == 'W' || e == 'H') && !in_class) {
        out.append("[^").append(e == 'W' ? kWord : kHex).append("]");
      } else if (e == 'p' || e == 'P') {
        // \pX or \p{Name}
        size_t end = i + 1;
        std::string_view name;
        if (end < p.size() && p[end] == '{') {
          const size_t close = p.find('}', end);
          if (close == std::string_view::npos) {
            out.append(p.substr(i - 1));
            return out;
          }
          name = p.substr(end + 1, close - end - 1);
          end = close + 1;
        } else if (end < p.size()) {
          name = p.substr(end, 1);
          end = end + 1;
        }
        const std::string_view original = p.substr(i - 1, end - (i - 1));
        const std::string extra = extra_for_property(name);
        if (extra.empty() || (e == 'P' && in_class)) {
          out.append(original);
        } else if (in_class) {
          out.append(original).append(extra);
        } else {
          out.append(e == 'P' ? "[^\\p{" : "[\\p{").append(name).append("}").append(extra).append("]");
        }
        i = end - 1;
      } else {
        out.push_back('\\');
        out.push_back(e);
        if (e == 'Q') literal = true;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') out.push_back(p[++i]);
      if (i + 1 < p.size() && p[i + 1] == ']') out.push_back(p[++i]);
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      const size_t end = p.find(":]", i + 2);  // POSIX class [:name:]
      if (end != std::string_view::npos) {
        out.append(p.substr(i, end + 2 - i));
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace ds::tok
