#include "serve/chat_template/lexer.h"

#include <cctype>

#include "serve/chat_template/utf8.h"
#include "serve/chat_template/value.h"

namespace ds::jinja {
namespace {

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {}

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t tag = find_tag(pos);
      if (tag == std::string::npos) {
        emit(TokenType::kData, src_.substr(pos), pos);
        break;
      }
      char kind = src_[tag + 1];
      char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+')
                      ? src_[tag + 2] : 0;
      std::string text = src_.substr(pos, tag - pos);
      text = strip_before(std::move(text), sign, kind != '{', line_starting);
      if (!text.empty()) emit(TokenType::kData, std::move(text), pos);
      size_t body = tag + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        pos = lex_comment(tag, body);
      } else if (kind == '%' && is_raw_begin(body, &pos)) {
        pos = lex_raw(tag, pos);
      } else {
        pos = lex_tag(kind, tag, body);
      }
      line_starting = pos > 0 && src_[pos - 1] == '\n';
    }
    emit(TokenType::kEof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void error(size_t pos, const std::string& what) {
    throw Error("syntax error at " + describe_position(src_, pos) + ": " + what, true);
  }

  void emit(TokenType t, std::string v, size_t pos) { tokens_.push_back({t, std::move(v), pos}); }

  size_t find_tag(size_t from) const {
    for (size_t p = src_.find('{', from); p != std::string::npos; p = src_.find('{', p + 1)) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#'))
        return p;
    }
    return std::string::npos;
  }

  // Whitespace control for the text before a tag: `-` strips all trailing whitespace;
  // lstrip_blocks strips spaces and tabs between the line start and a block/comment tag.
  std::string strip_before(std::string text, char sign, bool block_or_comment,
                           bool line_starting) const {
    if (sign == '-') return str_strip(text, nullptr, false, true);
    if (sign == '+' || !block_or_comment) return text;
    size_t nl = text.rfind('\n');
    size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos == 0 && !line_starting) return text;
    if (l_pos == text.size()) return text;
    for (char32_t cp : utf8_decode(std::string_view(text).substr(l_pos)))
      if (!is_space(cp)) return text;
    text.resize(l_pos);
    return text;
  }

  size_t skip_space(size_t p) const {
    while (p < src_.size()) {
      unsigned char c = static_cast<unsigned char>(src_[p]);
      if (c < 0x80) {
        if (!std::isspace(c)) break;
        ++p;
        continue;
      }
      std::vector<char32_t> cp = utf8_decode(std::string_view(src_).substr(p, 4));
      if (cp.empty() || !is_space(cp[0])) break;
      std::string enc;
      utf8_append(enc, cp[0]);
      p += enc.size();
    }
    return p;
  }

  // After a block/comment end: `-` strips following whitespace, `+` keeps it, and
  // trim_blocks drops one newline.
  size_t after_block_end(size_t end_pos, char sign) const {
    if (sign == '-') return skip_space(end_pos);
    if (sign == '+') return end_pos;
    return end_pos < src_.size() && src_[end_pos] == '\n' ? end_pos + 1 : end_pos;
  }

  size_t lex_comment(size_t tag, size_t body) {
    size_t end = src_.find("#}", body);
    if (end == std::string::npos) error(tag, "missing end of comment tag");
    char sign = end > body && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : 0;
    return after_block_end(end + 2, sign);
  }

  // Matches `\s*raw\s*(-%}|%})` after `{%`; sets *after to the position after the tag.
  bool is_raw_begin(size_t body, size_t* after) const {
    size_t p = skip_space(body);
    if (src_.compare(p, 3, "raw") != 0) return false;
    p = skip_space(p + 3);
    if (src_.compare(p, 3, "-%}") == 0) {
      *after = skip_space(p + 3);
      return true;
    }
    if (src_.compare(p, 2, "%}") == 0) {
      *after = p + 2;
      return true;
    }
    return false;
  }

  size_t lex_raw(size_t tag, size_t content) {
    for (size_t p = src_.find("{%", content); p != std::string::npos; p = src_.find("{%", p + 2)) {
      size_t q = p + 2;
      char sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : 0;
      if (sign) ++q;
      q = skip_space(q);
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q = skip_space(q + 6);
      char end_sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) end_sign = src_[q++];
      if (src_.compare(q, 2, "%}") != 0) continue;
      std::string text = strip_before(src_.substr(content, p - content), sign, true, false);
      if (!text.empty()) emit(TokenType::kData, std::move(text), content);
      return after_block_end(q + 2, end_sign);
    }
    error(tag, "missing end of raw directive");
  }

  size_t lex_tag(char kind, size_t tag, size_t p) {
    const bool is_var = kind == '{';
    emit(is_var ? TokenType::kVarBegin : TokenType::kBlockBegin, "", tag);
    std::string brackets;
    while (true) {
      p = skip_space(p);
      if (p >= src_.size()) {
        error(tag, is_var ? "unexpected end of template, expected '}}'"
                          : "unexpected end of template, expected '%}'");
      }
      if (brackets.empty()) {
        const char* end = is_var ? "}}" : "%}";
        char sign = src_[p] == '-' || src_[p] == '+' ? src_[p] : 0;
        if (sign == '+' && is_var) sign = 0;
        size_t e = p + (sign ? 1 : 0);
        if (src_.compare(e, 2, end) == 0) {
          emit(is_var ? TokenType::kVarEnd : TokenType::kBlockEnd, "", p);
          if (is_var) return sign == '-' ? skip_space(e + 2) : e + 2;
          return after_block_end(e + 2, sign);
        }
      }
      p = lex_token(p, brackets);
    }
  }

  size_t lex_token(size_t p, std::string& brackets) {
    unsigned char c = static_cast<unsigned char>(src_[p]);
    if (c == '\'' || c == '"') return lex_string(p);
    if (std::isdigit(c)) return lex_number(p);
    if (std::isalpha(c) || c == '_' || c >= 0x80) {
      size_t e = p;
      while (e < src_.size()) {
        unsigned char d = static_cast<unsigned char>(src_[e]);
        if (!(std::isalnum(d) || d == '_' || d >= 0x80)) break;
        ++e;
      }
      emit(TokenType::kName, src_.substr(p, e - p), p);
      return e;
    }
    static const char* kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo) {
      if (src_.compare(p, 2, op) == 0) {
        emit(TokenType::kOperator, op, p);
        return p + 2;
      }
    }
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(static_cast<char>(c)) == std::string_view::npos)
      error(p, std::string("unexpected character '") + static_cast<char>(c) + "'");
    if (c == '(' || c == '[' || c == '{') {
      brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) error(p, std::string("unexpected '") + static_cast<char>(c) + "'");
      if (brackets.back() != c) {
        error(p, std::string("unexpected '") + static_cast<char>(c) + "', expected '" +
                     brackets.back() + "'");
      }
      brackets.pop_back();
    }
    emit(TokenType::kOperator, std::string(1, static_cast<char>(c)), p);
    return p + 1;
  }

  size_t lex_number(size_t p) {
    auto digits = [&](size_t q, auto is_digit) {
      while (q < src_.size() && (is_digit(src_[q]) || (src_[q] == '_' && q + 1 < src_.size() &&
                                                       is_digit(src_[q + 1]))))
        ++q;
      return q;
    };
    auto dec = [](char ch) { return ch >= '0' && ch <= '9'; };
    if (src_[p] == '0' && p + 1 < src_.size() && std::strchr("xXoObB", src_[p + 1])) {
      char base = static_cast<char>(std::tolower(src_[p + 1]));
      auto ok = [base](char ch) {
        if (base == 'x') return std::isxdigit(static_cast<unsigned char>(ch)) != 0;
        if (base == 'o') return ch >= '0' && ch <= '7';
        return ch == '0' || ch == '1';
      };
      size_t e = digits(p + 2, ok);
      if (e == p + 2) error(p, "invalid integer literal");
      emit(TokenType::kInteger, src_.substr(p, e - p), p);
      return e;
    }
    size_t e = digits(p, dec);
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && dec(src_[e + 1])) {
      e = digits(e + 1, dec);
      is_float = true;
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t q = e + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && dec(src_[q])) {
        e = digits(q, dec);
        is_float = true;
      }
    }
    emit(is_float ? TokenType::kFloat : TokenType::kInteger, src_.substr(p, e - p), p);
    return e;
  }

  size_t lex_string(size_t p) {
    const char quote = src_[p];
    std::string out;
    size_t q = p + 1;
    while (true) {
      if (q >= src_.size()) error(p, "unterminated string literal");
      char c = src_[q];
      if (c == quote) break;
      if (c != '\\' || q + 1 >= src_.size()) {
        out.push_back(c);
        ++q;
        continue;
      }
      q = decode_escape(q, out);
    }
    emit(TokenType::kString, std::move(out), p);
    return q + 1;
  }

  // Python "unicode-escape" decoding of one escape at src_[q] == '\\'; unknown escapes are kept.
  size_t decode_escape(size_t q, std::string& out) {
    char e = src_[q + 1];
    auto hex = [&](size_t from, int n) -> long {
      if (from + static_cast<size_t>(n) > src_.size()) error(q, "truncated escape sequence");
      std::string h = src_.substr(from, static_cast<size_t>(n));
      for (char ch : h)
        if (!std::isxdigit(static_cast<unsigned char>(ch))) error(q, "truncated escape sequence");
      return std::stol(h, nullptr, 16);
    };
    switch (e) {
      case 'n': out.push_back('\n'); return q + 2;
      case 't': out.push_back('\t'); return q + 2;
      case 'r': out.push_back('\r'); return q + 2;
      case 'b': out.push_back('\b'); return q + 2;
      case 'f': out.push_back('\f'); return q + 2;
      case 'v': out.push_back('\v'); return q + 2;
      case 'a': out.push_back('\a'); return q + 2;
      case '\\': case '\'': case '"': out.push_back(e); return q + 2;
      case '\n': return q + 2;
      case 'x': utf8_append(out, static_cast<char32_t>(hex(q + 2, 2))); return q + 4;
      case 'u': utf8_append(out, static_cast<char32_t>(hex(q + 2, 4))); return q + 6;
      case 'U': {
        long v = hex(q + 2, 8);
        if (v > 0x10FFFF) error(q, "illegal Unicode character in escape sequence");
        utf8_append(out, static_cast<char32_t>(v));
        return q + 10;
      }
      default: break;
    }
    if (e >= '0' && e <= '7') {
      int v = 0, n = 0;
      size_t r = q + 1;
      while (n < 3 && r < src_.size() && src_[r] >= '0' && src_[r] <= '7') {
        v = v * 8 + (src_[r++] - '0');
        ++n;
      }
      utf8_append(out, static_cast<char32_t>(v));
      return r;
    }
    out.push_back('\\');
    return q + 1;
  }

  const std::string& src_;
  std::vector<Token> tokens_;
};

}  // namespace

std::string normalize_source(std::string_view s) {
  // Python's str.splitlines() separators, joined back with "\n".
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\r') {
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      out.push_back('\n');
    } else if (c == '\v' || c == '\f' || c == 0x1C || c == 0x1D || c == 0x1E) {
      out.push_back('\n');
    } else if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x85) {
      out.push_back('\n');
      ++i;
    } else if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(s[i + 2]) == 0xA8 ||
                static_cast<unsigned char>(s[i + 2]) == 0xA9)) {
      out.push_back('\n');
      i += 2;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string describe_position(std::string_view source, size_t pos) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < pos && i < source.size(); ++i) {
    if (source[i] == '\n') {
      ++line;
      col = 1;
    } else if ((static_cast<unsigned char>(source[i]) & 0xC0) != 0x80) {
      ++col;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

std::vector<Token> tokenize(const std::string& source) { return Lexer(source).run(); }

}  // namespace ds::jinja
