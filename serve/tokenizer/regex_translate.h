// Rewrites an Oniguruma pattern (as HF tokenizers compiles it) into a PCRE2
// pattern with the same matches:
//  - \s / \S become explicit Unicode White_Space sets (PCRE2's \s also
//    matches U+180E); \w / \W Oniguruma's Unicode word set (with marks,
//    without No); \h / \H hexadecimal digits;
//  - \p{X} / \pX / \P{X} for a general category (L, Lo, N, P, S, ...) also
//    take the characters that utf8proc's newer Unicode tables assign to X but
//    PCRE2's tables leave unassigned (e.g. CJK Extension H or the Unicode 15
//    emoji for PCRE2 10.42), as Oniguruma's tables are newer too.
// Known gaps: \S, \W, \H and \P{X} inside a character class are left as they
// are; \b uses PCRE2's word definition; the new characters of \p{X} are not
// added to \w.
#pragma once

#include <string>
#include <string_view>

namespace ds::tok {

std::string onig_to_pcre2(std::string_view pattern);

}  // namespace ds::tok
