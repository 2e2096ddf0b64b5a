// UTF-8 helpers for Python string semantics (lengths, indexes and case in code points).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ds::jinja {

// Decodes UTF-8; invalid bytes decode as U+FFFD one byte at a time.
std::vector<char32_t> utf8_decode(std::string_view s);
void utf8_append(std::string& out, char32_t cp);
std::string utf8_encode(const std::vector<char32_t>& cps);
// Number of code points.
int64_t utf8_length(std::string_view s);

// Python str.isspace() for one code point.
bool is_space(char32_t cp);
char32_t to_upper(char32_t cp);
char32_t to_lower(char32_t cp);
bool is_alpha(char32_t cp);
bool is_digit(char32_t cp);
bool is_printable(char32_t cp);
// Python str.upper()/lower()/title()/capitalize() (simple case mappings).
std::string str_upper(std::string_view s);
std::string str_lower(std::string_view s);
std::string str_title(std::string_view s);
std::string str_capitalize(std::string_view s);

// Python str.strip(chars) family; `chars` null means whitespace.
std::string str_strip(std::string_view s, const std::string* chars, bool left, bool right);
// Python str.split(sep, maxsplit) / rsplit; `sep` null means runs of whitespace.
std::vector<std::string> str_split(std::string_view s, const std::string* sep, int64_t maxsplit,
                                   bool from_right);
// Python str.replace(old, new, count).
std::string str_replace(std::string_view s, std::string_view from, std::string_view to,
                        int64_t count);

}  // namespace ds::jinja
