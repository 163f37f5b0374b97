#include "jetmoe/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "jetmoe/error.h"

namespace {

using jetmoe::ChatMessage;
using jetmoe::ChatTemplate;
using jetmoe::ChatTemplateOptions;

const std::string kDir = std::string(JETMOE_TEST_DATA) + "/chat_templates/";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string render(const std::string& source, const std::vector<ChatMessage>& messages = {{"user", "hi"}},
                   bool add_generation_prompt = true) {
  return ChatTemplate::parse(source).render(messages, {add_generation_prompt, "<s>", "</s>"});
}

// The message of the jetmoe::Error that `fn` throws, or "" if it throws nothing.
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const jetmoe::Error& e) {
    return e.what();
  }
  return "";
}

std::string parse_error(const std::string& source) {
  return error_of([&] { ChatTemplate::parse(source); });
}

// Every template x conversation rendered by python jinja2 (make_expected.py) must come out
// byte-identical, including the exceptions raised through raise_exception().
TEST(ChatTemplate, MatchesPythonJinja2OnRealTemplates) {
  const auto expected = nlohmann::json::parse(read_file(kDir + "expected.json"));
  std::map<std::string, ChatTemplate> templates;
  int outputs = 0, errors = 0;
  for (const auto& c : expected.at("cases")) {
    const std::string name = c.at("template");
    if (!templates.count(name)) templates.emplace(name, ChatTemplate::parse(read_file(kDir + name)));
    std::vector<ChatMessage> messages;
    for (const auto& m : c.at("messages")) messages.push_back({m.at("role"), m.at("content")});
    const ChatTemplateOptions options{c.at("add_generation_prompt").get<bool>(), c.at("bos_token"), c.at("eos_token")};
    const std::string label = name + " / " + c.at("conversation").get<std::string>() +
                              " / add_generation_prompt=" + (options.add_generation_prompt ? "true" : "false");
    if (c.contains("output")) {
      std::string got;
      EXPECT_NO_THROW(got = templates.at(name).render(messages, options)) << label;
      EXPECT_EQ(got, c.at("output").get<std::string>()) << label;
      ++outputs;
    } else {
      EXPECT_EQ(error_of([&] { templates.at(name).render(messages, options); }), c.at("error").get<std::string>())
          << label;
      ++errors;
    }
  }
  // Guards against an expected.json that silently lost its cases.
  EXPECT_GE(templates.size(), 8u);
  EXPECT_GE(outputs, 100);
  EXPECT_GE(errors, 10);
}

TEST(ChatTemplate, JetMoeChatTemplateRendersZephyrStyle) {
  const ChatTemplate t = ChatTemplate::parse(read_file(kDir + "jetmoe-8b-chat.jinja"));
  const std::string out = t.render({{"system", "Be brief."}, {"user", "Hi"}}, {true, "<s>", "</s>"});
  EXPECT_EQ(out, "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n");
  const std::string no_prompt = t.render({{"user", "Hi"}}, {false, "<s>", "</s>"});
  EXPECT_EQ(no_prompt, "<|user|>\nHi</s>\n");
}

TEST(ChatTemplate, RaiseExceptionMessageIsTheErrorMessage) {
  EXPECT_EQ(error_of([] { render("{{ raise_exception('roles must alternate') }}"); }), "roles must alternate");
}

TEST(ChatTemplate, WhitespaceControlMatchesJinjaSettings) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks drops indentation before it.
  EXPECT_EQ(render("{% if true %}\n  a\n  {% endif %}\nb"), "  a\nb");
  EXPECT_EQ(render("x  {%- if true -%}  y  {%- endif %}"), "xy");
  EXPECT_EQ(render("a {{- ' b' -}} \n c"), "a bc");
  EXPECT_EQ(render("  {%+ if true %}k{% endif %}"), "  k");
  EXPECT_EQ(render("a\n  {# note #}\nb"), "a\nb");
  // One trailing newline of the source is dropped, as jinja2 does without keep_trailing_newline.
  EXPECT_EQ(render("x\n"), "x");
  EXPECT_EQ(render("x\r\ny"), "x\ny");
}

TEST(ChatTemplate, ScopingAndNamespaces) {
  // A set inside a loop does not leak out of it; a namespace attribute does.
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1, 2] %}{% set x = i %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(render("{% set ns = namespace(x=1) %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}"), "4");
  EXPECT_NE(error_of([] { render("{% set s = 'a' %}{% set s.x = 1 %}"); }).find("namespace"), std::string::npos);
}

TEST(ChatTemplate, UndefinedBehavesLikeJinjaDefaultUndefined) {
  EXPECT_EQ(render("[{{ nope }}]{% if nope %}yes{% else %}no{% endif %}{% for x in nope %}x{% endfor %}"), "[]no");
  EXPECT_EQ(render("{{ messages[5] is defined }} {{ messages[0].nope is defined }} {{ nope ~ 'a' }}"), "False False a");
  const std::string err = error_of([] { render("{{ nope.attr }}"); });
  EXPECT_NE(err.find("'nope' is undefined"), std::string::npos) << err;
  EXPECT_NE(error_of([] { render("{{ nope + 1 }}"); }).find("undefined"), std::string::npos);
}

TEST(ChatTemplate, TypeErrorsAreReportedWithPosition) {
  const std::string err = error_of([] { render("\n  {{ 'a' + 1 }}"); });
  EXPECT_NE(err.find("line 2, column 10"), std::string::npos) << err;
  EXPECT_NE(err.find("'str' and 'int'"), std::string::npos) << err;
  EXPECT_NE(error_of([] { render("{{ 1 // 0 }}"); }).find("division by zero"), std::string::npos);
  EXPECT_NE(error_of([] { render("{% for x in 3 %}{% endfor %}"); }).find("not iterable"), std::string::npos);
}

TEST(ChatTemplate, UnsupportedConstructsAreClearParseErrors) {
  const std::string macro = parse_error("line one\n{% macro greet(name) %}hi{% endmacro %}");
  EXPECT_NE(macro.find("line 2, column 4"), std::string::npos) << macro;
  EXPECT_NE(macro.find("'{% macro %}' is not supported"), std::string::npos) << macro;
  EXPECT_NE(parse_error("{% include 'other.jinja' %}").find("'{% include %}' is not supported"), std::string::npos);
  EXPECT_NE(parse_error("{% generation %}x{% endgeneration %}").find("not supported"), std::string::npos);
  const std::string filter = parse_error("{{ messages | map(attribute='role') }}");
  EXPECT_NE(filter.find("filter 'map' is not supported"), std::string::npos) << filter;
  EXPECT_NE(filter.find("column 15"), std::string::npos) << filter;
  EXPECT_NE(parse_error("{{ x is sameas y }}").find("test 'sameas' is not supported"), std::string::npos);
  EXPECT_NE(parse_error("{% set x %}a{% endset %}").find("block assignment"), std::string::npos);
  EXPECT_NE(parse_error("{% frobnicate %}").find("unknown tag"), std::string::npos);
  EXPECT_NE(error_of([] { render("{{ messages.append(1) }}"); }).find("method 'append'"), std::string::npos);
  EXPECT_NE(error_of([] { render("{{ strftime_now('%Y') }}"); }).find("'strftime_now' is undefined"), std::string::npos);
}

TEST(ChatTemplate, SyntaxErrorsNameLineAndProblem) {
  const std::string unclosed = parse_error("a\nb {% if x %}never closed");
  EXPECT_NE(unclosed.find("line 2, column 6"), std::string::npos) << unclosed;
  EXPECT_NE(unclosed.find("endif"), std::string::npos) << unclosed;
  EXPECT_NE(parse_error("{{ 'abc }}").find("string literal is never closed"), std::string::npos);
  EXPECT_NE(parse_error("{{ x ").find("never closed"), std::string::npos);
  EXPECT_NE(parse_error("{% endfor %}").find("without a matching opening tag"), std::string::npos);
  EXPECT_NE(parse_error("{% break %}").find("outside of a for loop"), std::string::npos);
  EXPECT_NE(parse_error("{{ (1 + }}").find("expected an expression"), std::string::npos);
  EXPECT_NE(parse_error("{{ x $ y }}").find("unexpected character '$'"), std::string::npos);
  EXPECT_NE(parse_error("{# never closed").find("comment"), std::string::npos);
}

TEST(ChatTemplate, DeepNestingIsRefusedNotACrash) {
  std::string deep_expr = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_NE(parse_error(deep_expr).find("nests deeper"), std::string::npos);
  std::string deep_not = "{{ " ;
  for (int k = 0; k < 5000; ++k) deep_not += "not ";
  EXPECT_NE(parse_error(deep_not + "x }}").find("nests deeper"), std::string::npos);
  std::string deep_if;
  for (int k = 0; k < 5000; ++k) deep_if += "{% if true %}";
  EXPECT_NE(parse_error(deep_if).find("nests deeper"), std::string::npos);
  // Moderate nesting is fine.
  std::string ok;
  for (int k = 0; k < 50; ++k) ok += "{% if true %}";
  ok += "in";
  for (int k = 0; k < 50; ++k) ok += "{% endif %}";
  EXPECT_EQ(render(ok), "in");
}

TEST(ChatTemplate, HugeLoopsAndOutputsHitLimits) {
  EXPECT_NE(error_of([] { render("{% for i in range(5000000) %}{% endfor %}"); }).find("range()"), std::string::npos);
  const std::string nested = error_of([] {
    render("{% for a in range(2000) %}{% for b in range(2000) %}{% endfor %}{% endfor %}");
  });
  EXPECT_NE(nested.find("iterations"), std::string::npos) << nested;
  const std::string big = error_of([] {
    render("{% for a in range(100000) %}{{ 'x' * 1000 }}{% endfor %}");
  });
  EXPECT_NE(big.find("output exceeds"), std::string::npos) << big;
}

TEST(ChatTemplate, ParsedTemplateIsReusableAndCopyable) {
  const ChatTemplate t = ChatTemplate::parse("{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}");
  const ChatTemplate copy = t;
  EXPECT_EQ(copy.render({{"user", "a"}}, {}), "user:a;");
  EXPECT_EQ(t.render({{"user", "a"}, {"assistant", "b"}}, {}), "user:a;assistant:b;");
}

}  // namespace
