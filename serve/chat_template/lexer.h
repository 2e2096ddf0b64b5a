// Jinja lexer with the whitespace rules Hugging Face sets for chat templates: trim_blocks
// (drop the first newline after a block or comment tag), lstrip_blocks (drop spaces and tabs
// before a block or comment tag that starts its line), `-` / `+` modifiers, no trailing newline.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ds::jinja {

enum class TokenType {
  kData,        // template text
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,      // value is the decoded string
  kInteger,
  kFloat,
  kOperator,
  kEof,
};

struct Token {
  TokenType type;
  std::string value;
  size_t pos;  // byte offset in the normalized source
};

// The source as Jinja sees it: every line break normalized to "\n", one trailing newline removed.
std::string normalize_source(std::string_view source);

// "line L, column C" (1-based; columns count code points) of a byte offset.
std::string describe_position(std::string_view source, size_t pos);

// Tokenizes a normalized source. Throws jinja::Error naming the line and column.
std::vector<Token> tokenize(const std::string& source);

}  // namespace ds::jinja
