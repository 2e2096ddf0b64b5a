// UTF-8 helpers shared by the tokenizer: validation, code point iteration,
// the GPT-2 byte <-> unicode mapping used by ByteLevel, Unicode character
// classes matching the Rust `regex` crate (\s, \w), and lossy decoding with
// the same U+FFFD substitution as Rust's String::from_utf8_lossy.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ds::tok {

// Returns true if `s` is well-formed UTF-8; otherwise sets *error_offset to
// the byte offset of the first ill-formed sequence.
bool utf8_valid(std::string_view s, size_t* error_offset);

// Decodes the code point at s[i] (s must be valid UTF-8). Returns its length.
inline size_t utf8_decode(std::string_view s, size_t i, char32_t* cp) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  if (p[0] < 0x80) { *cp = p[0]; return 1; }
  if (p[0] < 0xE0) { *cp = (char32_t(p[0] & 0x1F) << 6) | (p[1] & 0x3F); return 2; }
  if (p[0] < 0xF0) {
    *cp = (char32_t(p[0] & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    return 3;
  }
  *cp = (char32_t(p[0] & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) |
        (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
  return 4;
}

// Length of the UTF-8 sequence introduced by lead byte `b` (valid input).
inline size_t utf8_len(unsigned char b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

void utf8_append(std::string* out, char32_t cp);

// Code point of the last character of a non-empty valid UTF-8 string.
char32_t utf8_last(std::string_view s);

// Unicode White_Space (Rust `char::is_whitespace`, regex `\s`).
bool is_unicode_space(char32_t cp);
// Rust regex Unicode `\w`: alphabetic, marks, decimal digits, connector
// punctuation, join controls.
bool is_word_char(char32_t cp);

// The GPT-2 byte-level alphabet: every byte maps to one printable code point.
struct ByteLevelTables {
  std::array<char32_t, 256> byte_to_cp;
  std::array<int16_t, 512> cp_to_byte;  // -1 where the code point is not in the alphabet
};
const ByteLevelTables& byte_level_tables();

// Maps raw bytes to their byte-level characters (UTF-8 encoded).
std::string byte_level_encode(std::string_view bytes);
// HF ByteLevel decoder for one token: if every char of `token` belongs to the
// alphabet, appends the bytes they stand for; otherwise appends `token` as is.
void byte_level_decode_append(std::string_view token, std::string* out);

// Appends the lossy UTF-8 decoding of in[0, n) to *out, where invalid
// sequences become U+FFFD exactly like Rust's from_utf8_lossy (one per maximal
// ill-formed subpart). If `final` is false, a trailing incomplete but so far
// valid sequence is not consumed. Returns the number of bytes consumed.
size_t utf8_lossy_append(std::string_view in, bool final, std::string* out);

}  // namespace ds::tok
