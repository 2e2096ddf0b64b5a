#include "serve/chat_template/chat_template.h"

#include <new>

#include "serve/chat_template/ast.h"
#include "serve/chat_template/interpreter.h"
#include "serve/chat_template/lexer.h"
#include "serve/chat_template/parser.h"

namespace ds {

struct ChatTemplate::Impl {
  std::string source;  // normalized; positions in errors refer to it
  jinja::Body body;
};

ChatTemplate::ChatTemplate() : impl_(std::make_unique<Impl>()) {}
ChatTemplate::~ChatTemplate() = default;

Result<std::unique_ptr<ChatTemplate>> ChatTemplate::parse(std::string_view source) {
  std::unique_ptr<ChatTemplate> t(new ChatTemplate());
  try {
    t->impl_->source = jinja::normalize_source(source);
    t->impl_->body = jinja::parse_template(t->impl_->source);
  } catch (const jinja::Error& e) {
    return Status::Error(StrCat() << "chat template: " << e.what());
  } catch (const std::bad_alloc&) {
    return Status::Error("chat template: out of memory while parsing");
  }
  return t;
}

template <typename Json>
static Result<std::string> render_impl(const std::string& source, const jinja::Body& body,
                                       const Json& context) {
  if (!context.is_object()) return Status::Error("chat template: the render context must be a JSON object");
  try {
    jinja::Value ctx = jinja::Value::from_json(context);
    jinja::Interpreter interpreter(source, ctx.map());
    return interpreter.render(body);
  } catch (const jinja::Error& e) {
    return Status::Error(e.what());
  } catch (const std::bad_alloc&) {
    return Status::Error("chat template: out of memory while rendering");
  } catch (const std::exception& e) {
    return Status::Error(StrCat() << "chat template: " << e.what());
  }
}

Result<std::string> ChatTemplate::render(const nlohmann::json& context) const {
  return render_impl(impl_->source, impl_->body, context);
}

Result<std::string> ChatTemplate::render(const nlohmann::ordered_json& context) const {
  return render_impl(impl_->source, impl_->body, context);
}

}  // namespace ds
