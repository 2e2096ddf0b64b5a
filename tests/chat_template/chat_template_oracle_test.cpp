// Compares ds::ChatTemplate with Python Jinja2 (set up like HF transformers) on every case that
// oracle.py rendered: real model templates x conversations, and language-feature templates.
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "serve/chat_template/chat_template.h"

namespace {

std::string g_expected_path;

// First differing byte, with some context, for readable failures.
std::string describe_difference(const std::string& want, const std::string& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  size_t from = i > 40 ? i - 40 : 0;
  std::ostringstream os;
  os << "first difference at byte " << i << "\n  expected: "
     << nlohmann::json(want.substr(from, 120)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
     << "\n  actual:   "
     << nlohmann::json(got.substr(from, 120)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return os.str();
}

TEST(ChatTemplateOracle, MatchesPythonJinja) {
  ASSERT_FALSE(g_expected_path.empty()) << "pass --expected <oracle output>";
  std::ifstream in(g_expected_path);
  ASSERT_TRUE(in) << "cannot open " << g_expected_path;
  nlohmann::ordered_json cases = nlohmann::ordered_json::parse(in);
  ASSERT_TRUE(cases.is_array());
  ASSERT_GT(cases.size(), 100u);
  size_t compared = 0, expected_errors = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const std::string error = c.at("error").is_null() ? "" : c.at("error").get<std::string>();
    // Jinja reports these when compiling the template; so must ChatTemplate::parse.
    const bool compile_error = error.rfind("TemplateSyntaxError", 0) == 0 ||
                               error.rfind("TemplateAssertionError", 0) == 0 ||
                               error.rfind("SyntaxError", 0) == 0;
    auto tmpl = ds::ChatTemplate::parse(c.at("template").get<std::string>());
    if (!tmpl.ok()) {
      EXPECT_TRUE(compile_error) << "parse failed: " << tmpl.status().message();
      ++expected_errors;
      continue;
    }
    EXPECT_FALSE(compile_error) << "Jinja rejected the template (" << error << ") but it parsed";
    if (compile_error) continue;
    auto out = (*tmpl)->render(c.at("context"));
    if (c.at("output").is_null()) {
      ++expected_errors;
      EXPECT_FALSE(out.ok()) << "Jinja failed with '" << error
                             << "' but we rendered: " << (out.ok() ? out.value() : "");
      continue;
    }
    if (!out.ok()) {
      ADD_FAILURE() << "render failed: " << out.status().message();
      continue;
    }
    const std::string want = c.at("output").get<std::string>();
    ++compared;
    if (out.value() != want) ADD_FAILURE() << describe_difference(want, out.value());
  }
  // Both outcomes must be exercised: byte-exact outputs and errors where Jinja fails.
  EXPECT_GT(compared, 100u);
  EXPECT_GT(expected_errors, 20u);
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--expected") g_expected_path = argv[i + 1];
  }
  return RUN_ALL_TESTS();
}
