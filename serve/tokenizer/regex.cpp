#include "serve/tokenizer/regex.h"

#include <pcre2.h>

#include "serve/tokenizer/regex_translate.h"
#include "serve/tokenizer/utf8_util.h"

namespace ds::tok {
namespace {

// Per-thread match state: PCRE2 match data and JIT stack are not shareable
// between threads, the compiled pattern is.
struct ThreadMatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  ThreadMatchState() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (context && jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~ThreadMatchState() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  ThreadMatchState(const ThreadMatchState&) = delete;
  ThreadMatchState& operator=(const ThreadMatchState&) = delete;
};

ThreadMatchState& thread_state() {
  thread_local ThreadMatchState state;
  return state;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  if (pcre2_get_error_message(code, buf, sizeof(buf)) < 0) return "unknown PCRE2 error";
  return std::string(reinterpret_cast<const char*>(buf));
}

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() { pcre2_code_free(code); }
};

Regex::Regex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;
Regex::~Regex() = default;

Result<Regex> Regex::compile(std::string_view pattern, const std::string& what) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_compile_context* cctx = pcre2_compile_context_create(nullptr);
  if (cctx == nullptr) return Status::Error("out of memory compiling regex " + what);
  // Oniguruma (Ruby syntax): '^'/'$' are line anchors and only LF ends a line.
  pcre2_set_newline(cctx, PCRE2_NEWLINE_LF);
  const std::string translated = onig_to_pcre2(pattern);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &err_off, cctx);
  pcre2_compile_context_free(cctx);
  if (code == nullptr) {
    return Status::Error(StrCat() << "invalid regex in " << what << " at offset " << err_off
                                  << ": " << pcre2_message(err) << " (pattern: " << pattern
                                  << ")");
  }
  auto impl = std::make_unique<Impl>();
  impl->code = code;
  impl->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return Regex(std::move(impl));
}

std::string Regex::escape(std::string_view literal) {
  std::string out;
  out.reserve(literal.size() * 2);
  for (char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    const bool alnum = (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z');
    if (u < 0x80 && !alnum) {
      if (u < 0x20 || u == 0x7F) {  // control characters as \x{..}
        static constexpr char kHex[] = "0123456789abcdef";
        out += "\\x{";
        out.push_back(kHex[u >> 4]);
        out.push_back(kHex[u & 15]);
        out.push_back('}');
        continue;
      }
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

Status Regex::find_all(std::string_view subject,
                       std::vector<std::pair<size_t, size_t>>* out) const {
  ThreadMatchState& st = thread_state();
  if (st.data == nullptr || st.context == nullptr) return Status::Error("out of memory in regex match");
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  const size_t n = subject.size();
  size_t pos = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (pos <= n) {
    const int rc = impl_->jit
        ? pcre2_jit_match(impl_->code, s, n, pos, PCRE2_NO_UTF_CHECK, st.data, st.context)
        : pcre2_match(impl_->code, s, n, pos, PCRE2_NO_UTF_CHECK, st.data, st.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) return Status::Error("regex match failed: " + pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
    const size_t b = ov[0], e = ov[1];
    if (b == e && have_last && last_end == e) {
      // Empty match right after the previous one: step one character.
      pos += pos < n ? utf8_len(static_cast<unsigned char>(subject[pos])) : 1;
      continue;
    }
    out->emplace_back(b, e);
    pos = e;
    have_last = true;
    last_end = e;
  }
  return Status::Ok();
}

}  // namespace ds::tok
