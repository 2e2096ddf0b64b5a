// Unit tests of ds::ChatTemplate: error reporting (syntax errors with line and column, runtime
// errors as Status), bounds on recursion and nesting, context handling. Rendering fidelity
// against Python Jinja2 is covered by chat_template_oracle_test.
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "serve/chat_template/chat_template.h"

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

std::unique_ptr<ds::ChatTemplate> parse_ok(const std::string& src) {
  auto t = ds::ChatTemplate::parse(src);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? std::move(t).value() : nullptr;
}

std::string parse_error(const std::string& src) {
  auto t = ds::ChatTemplate::parse(src);
  EXPECT_FALSE(t.ok()) << "expected a syntax error for: " << src;
  return t.ok() ? "" : t.status().message();
}

std::string render_ok(const std::string& src, const json& ctx = json::object()) {
  auto t = parse_ok(src);
  if (!t) return "<parse failed>";
  auto r = t->render(ctx);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r.value() : "<render failed>";
}

std::string render_error(const std::string& src, const json& ctx = json::object()) {
  auto t = parse_ok(src);
  if (!t) return "<parse failed>";
  auto r = t->render(ctx);
  EXPECT_FALSE(r.ok()) << "expected a render error, got: " << (r.ok() ? r.value() : "");
  return r.ok() ? "" : r.status().message();
}

TEST(ChatTemplateSyntax, ErrorNamesLineAndColumn) {
  EXPECT_EQ(parse_error("line one\n  {{ 1 + }}"),
            "chat template: syntax error at line 2, column 10: unexpected end of print statement, "
            "expected an expression");
  EXPECT_NE(parse_error("{% if x %}\nabc").find("line 2, column 4: unexpected end of template, "
                                                "expected 'elif' or 'else' or 'endif'"),
            std::string::npos);
  EXPECT_NE(parse_error("a\nb {{ x | nope }}").find("line 2, column 10: no filter named 'nope'"),
            std::string::npos);
  EXPECT_NE(parse_error("{{ x is nope }}").find("line 1, column 9: no test named 'nope'"), std::string::npos);
  EXPECT_NE(parse_error("{% frobnicate %}").find("unknown tag 'frobnicate'"), std::string::npos);
  EXPECT_NE(parse_error("{{ 'abc }}").find("line 1, column 4: unterminated string literal"), std::string::npos);
  EXPECT_NE(parse_error("{% break %}").find("'break' outside of a loop"), std::string::npos);
  EXPECT_NE(parse_error("{{ (1 ]] }}").find("unexpected ']', expected ')'"), std::string::npos);
  EXPECT_NE(parse_error("{# never closed").find("missing end of comment tag"), std::string::npos);
  EXPECT_NE(parse_error("{% include 'x.j2' %}").find("not supported"), std::string::npos);
  // Columns count code points, not bytes.
  EXPECT_NE(parse_error("héé {{ ) }}").find("line 1, column 8"), std::string::npos);
}

TEST(ChatTemplateSyntax, NestingIsBounded) {
  std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_NE(parse_error(deep).find("nested too deeply"), std::string::npos);
  std::string blocks;
  for (int i = 0; i < 1000; ++i) blocks += "{% if true %}";
  EXPECT_NE(parse_error(blocks).find("nested too deeply"), std::string::npos);
  std::string nots = "{{ " + std::string(0, ' ');
  for (int i = 0; i < 5000; ++i) nots += "not ";
  EXPECT_NE(parse_error(nots + "x }}").find("nested too deeply"), std::string::npos);
}

TEST(ChatTemplateRender, RaiseExceptionMessageIsVerbatim) {
  EXPECT_EQ(render_error("{{ raise_exception('Only user and assistant roles are supported!') }}"),
            "Only user and assistant roles are supported!");
  EXPECT_EQ(render_error("{% if true %}\n  {{ raise_exception('bad: ' ~ 3) }}{% endif %}"), "bad: 3");
}

TEST(ChatTemplateRender, RuntimeErrorsNamePosition) {
  EXPECT_EQ(render_error("ok\n{{ 1 // 0 }}"), "error at line 2, column 4: integer division or modulo by zero");
  EXPECT_EQ(render_error("{{ 1 / 0 }}"), "error at line 1, column 4: division by zero");
  EXPECT_EQ(render_error("{{ foo.bar }}"), "error at line 1, column 4: 'foo' is undefined");
  EXPECT_EQ(render_error("{{ m.content.strip() }}", {{"m", {{"content", nullptr}}}}),
            "error at line 1, column 4: 'None' has no attribute 'strip'");
  EXPECT_NE(render_error("{{ 'a' + 1 }}").find("can only concatenate str"), std::string::npos);
  EXPECT_NE(render_error("{% set l = [] %}{{ l.append(1) }}").find("unsafe"), std::string::npos);
}

TEST(ChatTemplateRender, UndefinedBehavesLikeJinja) {
  EXPECT_EQ(render_ok("[{{ missing }}][{{ missing | length }}][{{ missing is defined }}]"), "[][0][False]");
  EXPECT_EQ(render_ok("{% if missing %}x{% else %}y{% endif %}{% for i in missing %}z{% endfor %}"), "y");
  EXPECT_EQ(render_ok("{{ d.nope is defined }}", {{"d", json::object()}}), "False");
  EXPECT_NE(render_error("{{ d.nope.deeper }}", {{"d", json::object()}}).find("'dict object' has no attribute 'nope'"),
            std::string::npos);
}

TEST(ChatTemplateRender, RecursionIsBounded) {
  std::string msg = render_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_NE(msg.find("maximum recursion depth exceeded"), std::string::npos) << msg;
  msg = render_error("{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}");
  EXPECT_NE(msg.find("maximum recursion depth exceeded"), std::string::npos) << msg;
  // A namespace holding itself cannot be printed forever.
  msg = render_error("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}");
  EXPECT_NE(msg.find("recursion"), std::string::npos) << msg;
}

TEST(ChatTemplateRender, ResourceLimits) {
  EXPECT_NE(render_error("{{ 'a' * 10000000000 }}").find("too large"), std::string::npos);
  EXPECT_NE(render_error("{{ 9223372036854775807 + 1 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render_error("{{ range(1000000) | length }}").find("Range too big"), std::string::npos);
  json deep = json::array();
  for (int i = 0; i < 2000; ++i) deep = json::array({deep});
  auto t = parse_ok("{{ x | length }}");
  auto r = t->render(json{{"x", deep}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested too deeply"), std::string::npos);
}

TEST(ChatTemplateRender, ContextMustBeAnObject) {
  auto t = parse_ok("x");
  auto r = t->render(json::array());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("must be a JSON object"), std::string::npos);
}

TEST(ChatTemplateRender, OrderedContextKeepsKeyOrder) {
  auto t = parse_ok("{{ tool | tojson }}");
  ordered_json ctx = ordered_json::parse(R"({"tool": {"name": "f", "description": "d", "args": {"z": 1, "a": 2}}})");
  auto ordered = t->render(ctx);
  ASSERT_TRUE(ordered.ok());
  EXPECT_EQ(ordered.value(), R"({"name": "f", "description": "d", "args": {"z": 1, "a": 2}})");
  auto sorted = t->render(json::parse(ctx.dump()));
  ASSERT_TRUE(sorted.ok());
  EXPECT_EQ(sorted.value(), R"({"args": {"a": 2, "z": 1}, "description": "d", "name": "f"})");
}

TEST(ChatTemplateRender, StrftimeNowUsesLocalTime) {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::string year = render_ok("{{ strftime_now('%Y') }}");
  ASSERT_EQ(year.size(), 4u);
  int y = std::stoi(year);
  EXPECT_GE(y, local.tm_year + 1900 - 1);
  EXPECT_LE(y, local.tm_year + 1900 + 1);
}

TEST(ChatTemplateRender, TemplateIsReusableAcrossThreads) {
  auto t = parse_ok("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}");
  json ctx = {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}, {{"role", "assistant"}, {"content", "yo"}}})}};
  std::vector<std::string> outs(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < outs.size(); ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 20; ++k) {
        auto r = t->render(ctx);
        outs[i] = r.ok() ? r.value() : r.status().message();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& o : outs) EXPECT_EQ(o, "<user>hi<assistant>yo");
}

TEST(ChatTemplateRender, NormalizesLineEndingsLikeJinja) {
  EXPECT_EQ(render_ok("a\r\nb\rc\n"), "a\nb\nc");
  EXPECT_EQ(render_ok("{% if true %}\r\nx{% endif %}"), "x");
}

}  // namespace
