// The chat-template interpreter: the fixture's Qwen2.5 template and the classic Qwen1.5/Qwen2
// one against prompts written out by hand, Jinja's whitespace control and expression rules
// (expected output as Jinja 3 renders with trim_blocks and lstrip_blocks, like transformers),
// rejection of syntax outside the subset, and the fixture chat prompts end to end.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

const std::filesystem::path kData = qvk::test::TestDataDir();

const ChatTemplate& FixtureTemplate() {
  static const ChatTemplate chat_template =
      ChatTemplate::FromTokenizerConfig(kData / "qwen2-tiny/tokenizer_config.json");
  return chat_template;
}

std::string Render(const std::string& source, std::vector<ChatMessage> messages = {},
                   bool add_generation_prompt = false) {
  return ChatTemplate(source).Apply(messages, add_generation_prompt);
}

// The message of the Error that building (or, with `messages`, applying) the template throws.
std::string ErrorOf(const std::string& source, const std::vector<ChatMessage>* messages = nullptr) {
  try {
    const ChatTemplate chat_template(source);
    if (messages != nullptr) chat_template.Apply(*messages, false);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for: " << source;
  return {};
}

constexpr const char* kDefaultSystem =
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n";

TEST(ChatTemplateTest, FixtureSystemAndUser) {
  const std::vector<ChatMessage> messages = {{"system", "You are a terse assistant."}, {"user", "Hi"}};
  EXPECT_EQ(FixtureTemplate().Apply(messages, true),
            "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(FixtureTemplate().Apply(messages, false),
            "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplateTest, FixtureUserOnlyGetsDefaultSystemPrompt) {
  const std::vector<ChatMessage> messages = {{"user", "Hi"}};
  EXPECT_EQ(FixtureTemplate().Apply(messages, true),
            std::string(kDefaultSystem) + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(FixtureTemplate().Apply(messages, false), std::string(kDefaultSystem) + "<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplateTest, FixtureMultiTurn) {
  const std::vector<ChatMessage> messages = {
      {"user", "2+2?"}, {"assistant", "4"}, {"system", "Answer in words."}, {"tool", "ignored"}, {"user", "3+3?"}};
  // A later system message is a turn of its own; roles the template does not know are dropped.
  const std::string turns =
      "<|im_start|>user\n2+2?<|im_end|>\n"
      "<|im_start|>assistant\n4<|im_end|>\n"
      "<|im_start|>system\nAnswer in words.<|im_end|>\n"
      "<|im_start|>user\n3+3?<|im_end|>\n";
  EXPECT_EQ(FixtureTemplate().Apply(messages, false), kDefaultSystem + turns);
  EXPECT_EQ(FixtureTemplate().Apply(messages, true), kDefaultSystem + turns + "<|im_start|>assistant\n");
}

constexpr const char* kClassicTemplate =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

TEST(ChatTemplateTest, ClassicQwenTemplate) {
  EXPECT_EQ(Render(kClassicTemplate, {{"user", "Hello"}}, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHello<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(Render(kClassicTemplate, {{"system", "Be kind."}, {"user", "Hello"}, {"assistant", "Hi!"}}, false),
            "<|im_start|>system\nBe kind.<|im_end|>\n"
            "<|im_start|>user\nHello<|im_end|>\n"
            "<|im_start|>assistant\nHi!<|im_end|>\n");
  EXPECT_EQ(Render(kClassicTemplate, {}, true), "<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, ReadsTemplateAndSpecialTokensFromConfig) {
  const std::filesystem::path path = std::filesystem::path(testing::TempDir()) / "named_templates.json";
  std::ofstream(path) << R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>", "chat_template": [
      {"name": "tool_use", "template": "tools"}, {"name": "default", "template": "{{ bos_token }}|{{ eos_token }}"}]})";
  const ChatTemplate chat_template = ChatTemplate::FromTokenizerConfig(path);
  EXPECT_EQ(chat_template.source(), "{{ bos_token }}|{{ eos_token }}");
  EXPECT_EQ(chat_template.Apply({}, false), "<s>|</s>");
  EXPECT_NE(FixtureTemplate().source().find("You are Qwen"), std::string::npos);
}

TEST(ChatTemplateTest, ConfigErrorsNameTheFile) {
  const std::filesystem::path dir = testing::TempDir();
  std::ofstream(dir / "no_template.json") << R"({"eos_token": "</s>"})";
  std::ofstream(dir / "no_default.json") << R"({"chat_template": [{"name": "rag", "template": "x"}]})";
  std::ofstream(dir / "broken.json") << R"({"chat_template": )";
  for (const char* name : {"no_template.json", "no_default.json", "broken.json", "missing.json"}) {
    try {
      ChatTemplate::FromTokenizerConfig(dir / name);
      ADD_FAILURE() << "no error for " << name;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

// Jinja with trim_blocks and lstrip_blocks: the newline after a block tag goes, so does the
// indentation before one, "-" strips all whitespace on its side, and one trailing newline of the
// source is dropped.
TEST(ChatTemplateTest, WhitespaceControlAsTransformers) {
  const std::string source =
      "{%- for message in messages %}\n"
      "    {%- if loop.first %}\n"
      "[{{ loop.index0 }}/{{ loop.length }}]\n"
      "    {%- endif %}\n"
      "  {{ message.role }}: {{ message['content'] | trim }}\n"
      "{% endfor %}\n"
      "{% if add_generation_prompt %}\n"
      "    <gen>\n"
      "{% endif %}\n";
  EXPECT_EQ(Render(source, {{"system", "  Be brief. "}, {"user", "Hi"}}, true),
            "[0/2]  system: Be brief.\n  user: Hi\n    <gen>\n");
  EXPECT_EQ(Render("a\n  {% if true %}\n  x\n  {% endif %}\nb\n"), "a\n  x\nb");
  EXPECT_EQ(Render("  {# comment #}\nX {%- if 1 -%}  \n Y  {%+ if 1 %}Z{% endif +%}\nW{% endif %}"), "XY  Z\nW");
  EXPECT_EQ(Render("{{ 'a' }}\n  {% if true %}y{% endif %}"), "a\ny");
  EXPECT_EQ(Render("x  {% if true %}y{% endif %}\r\nz"), "x  yz");
}

TEST(ChatTemplateTest, ExpressionsFollowJinja) {
  const std::vector<ChatMessage> messages = {{"system", "  Be brief. "}, {"user", "Hi"}};
  // A `set` inside a loop lasts one iteration; the outer value is unchanged afterwards.
  EXPECT_EQ(Render("{% set n = 0 %}{% for m in messages %}{% set n = n + 1 %}{{ n }}{{ loop.index }}"
                   "{% if loop.last %}!{% endif %}{% endfor %}{{ n }}",
                   messages),
            "1112!0");
  EXPECT_EQ(
      Render("{{ messages[-1].content }}|{{ messages[5] is defined }}{{ messages[0].nope is not defined }}", messages),
      "Hi|FalseTrue");
  EXPECT_EQ(Render("{{ 'ell' in 'hello' }}{{ 'x' not in messages[0] }}{{ 'role' in messages[0] }}", messages),
            "TrueTrueTrue");
  EXPECT_EQ(
      Render("{{ (none or '') + 'a' and 'b' }}|{{ 1 == true }}{{ messages|length }}{{ 'héllo'|length }}", messages),
      "b|True25");
  EXPECT_EQ(Render(R"({{ undefined_thing }}|{{ "q\"" + 'p\'' }}|{{ tools is defined }}{{ not tools }})"),
            "|q\"p'|TrueTrue");
  EXPECT_EQ(Render("{% if none %}1{% elif 0 %}2{% elif 'x' == \"x\" and not (1 != 1) %}3{% else %}4{% endif %}"), "3");
  EXPECT_EQ(Render("{{ '\u3000 wide \n'|trim }}|{{ 42 }}{{ -1 }}{{ none }}"), "wide|42-1None");
}

// What Qwen3's template uses, each as jinja2 renders it (checked with jinja2 3.1.6 and
// transformers' tojson): namespaces a loop writes to, slices, string methods, tests,
// comparisons, subtraction and tojson.
TEST(ChatTemplateTest, Qwen3ConstructsFollowJinja) {
  const std::vector<ChatMessage> messages = {{"system", "  Be brief. "}, {"user", "Hi"}};
  EXPECT_EQ(Render("{% set ns = namespace(n=0, last='') %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                   "{% set ns.last = m.role %}{% endfor %}{{ ns.n }}{{ ns.last }}{{ ns.missing is defined }}",
                   messages),
            "2userFalse");
  EXPECT_EQ(Render("{{ 'héllo wörld'[::-1] }}|{{ 'héllo'[1:3] }}|{{ 'abcdef'[-2:] }}|{{ 'abcdef'[:-4] }}|"
                   "{{ 'abcdef'[5:0:-2] }}|{{ 'abc'[10:] }}|{{ 'abc'[-10:2] }}"),
            "dlröw olléh|él|ef|ab|fdb||ab");
  EXPECT_EQ(Render("{% for m in messages[::-1] %}{{ m.role }}{{ loop.index0 }}{% endfor %}|"
                   "{{ (messages[1:] | length) }}{{ messages[:0] | length }}{{ messages[-1:][0].content }}",
                   messages),
            "user0system1|10Hi");
  EXPECT_EQ(
      Render("{{ 'a<think>b</think>\\n\\nc'.split('</think>')[0].split('<think>')[-1] }}|"
             "{{ '  a  b \\t'.split() | length }}|{{ 'a,,b'.split(',') | length }}|{{ '\\n\\nx\\n'.lstrip('\\n') }}|"
             "{{ 'x\\n\\n'.rstrip('\\n') }}|{{ '\\n x \\n'.strip('\\n') }}|{{ ' \u3000x\u3000 '.strip() }}|"
             "{{ 'xyyx'.strip('xy') }}|{{ 'ab'.startswith('a') }}{{ 'ab'.endswith('a') }}"),
      "b|2|3|x\n|x| x |x||TrueFalse");
  EXPECT_EQ(Render("{{ 'a' is string }}{{ 1 is string }}{{ none is none }}{{ false is false }}{{ 0 is false }}"
                   "{{ true is true }}{{ 1 is number }}{{ true is integer }}{{ 'x' is mapping }}"
                   "{{ messages[0] is mapping }}{{ nothing is undefined }}{{ messages is iterable }}"
                   "{{ 'x' is not string }}",
                   messages),
            "TrueFalseTrueTrueFalseTrueTrueFalseFalseTrueTrueTrueFalse");
  EXPECT_EQ(Render("{{ 3 - 5 }}{{ messages|length - 1 }}{{ 2 > 1 }}{{ 2 < 1 }}{{ 2 >= 2 }}{{ 1 <= 0 }}"
                   "{{ 'b' > 'a' }}{{ 'é' > 'z' }}{{ -3 + 1 }}",
                   messages),
            "-21TrueFalseTrueFalseTrueTrue-2");
  EXPECT_EQ(Render("{{ messages[0] | tojson }}|{{ messages | tojson(indent=2) }}", messages),
            "{\"role\": \"system\", \"content\": \"  Be brief. \"}|[\n  {\n    \"role\": \"system\",\n"
            "    \"content\": \"  Be brief. \"\n  },\n  {\n    \"role\": \"user\",\n    \"content\": \"Hi\"\n  }\n]");
  // A namespace passes through scopes by reference; an assignment inside a loop is seen after it.
  EXPECT_EQ(Render("{% set ns = namespace(found=false) %}{% for m in messages %}{% if m.role == 'user' %}"
                   "{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}",
                   messages),
            "True");
}

// The variables a template reads, which the app asks about enable_thinking.
TEST(ChatTemplateTest, KnowsTheVariablesItReads) {
  const ChatTemplate qwen3 = ChatTemplate::FromTokenizerConfig(kData / "family/qwen3-tokenizer/tokenizer_config.json");
  EXPECT_TRUE(qwen3.ReadsVariable("enable_thinking"));
  EXPECT_TRUE(qwen3.ReadsVariable("tools"));
  EXPECT_FALSE(FixtureTemplate().ReadsVariable("enable_thinking"));
  EXPECT_TRUE(FixtureTemplate().ReadsVariable("messages"));
  EXPECT_FALSE(ChatTemplate("{% set enable_thinking = 1 %}").ReadsVariable("enable_thinking"));
}

// tests/data/chat_template/goldens.json: conversations rendered by jinja2 as transformers
// configures it (scripts/dev/chat_template_goldens.py), through Qwen3's template and the fixture's
// Qwen2.5 one; a render jinja2 refused must be refused here too. Messages with only a role and a
// string content go through Apply as well, the path the app takes.
TEST(ChatTemplateTest, RendersAsTransformersByteForByte) {
  std::ifstream file(kData / "chat_template/goldens.json");
  const nlohmann::ordered_json goldens = nlohmann::ordered_json::parse(file);
  std::map<std::string, ChatTemplate> templates;
  for (const auto& [name, path] : goldens["templates"].items()) {
    templates.emplace(name, ChatTemplate::FromTokenizerConfig(kData / path.get<std::string>()));
  }
  ASSERT_EQ(templates.size(), 2u);
  size_t compared = 0;
  for (const nlohmann::ordered_json& c : goldens["cases"]) {
    const std::string name = c["name"];
    const bool add_generation_prompt = c["add_generation_prompt"];
    nlohmann::ordered_json variables = nlohmann::ordered_json::object();
    if (c.contains("tools")) variables["tools"] = c["tools"];
    TemplateOptions options;
    if (c.contains("enable_thinking")) {
      variables["enable_thinking"] = c["enable_thinking"];
      options.enable_thinking = c["enable_thinking"].get<bool>();
    }
    std::vector<ChatMessage> plain;
    for (const auto& m : c["messages"]) {
      if (m.size() == 2 && m.contains("role") && m.contains("content") && m["content"].is_string()) {
        plain.push_back({m["role"], m["content"]});
      }
    }
    const bool plain_messages = plain.size() == c["messages"].size() && !c.contains("tools");
    for (const auto& [template_name, render] : c["renders"].items()) {
      SCOPED_TRACE(name + " through " + template_name);
      const ChatTemplate& chat_template = templates.at(template_name);
      if (render.contains("error")) {
        EXPECT_THROW(chat_template.ApplyJson(c["messages"], add_generation_prompt, variables), Error);
        continue;
      }
      const std::string expected = render["text"];
      EXPECT_EQ(chat_template.ApplyJson(c["messages"], add_generation_prompt, variables), expected);
      if (plain_messages) {
        EXPECT_EQ(chat_template.Apply(plain, add_generation_prompt, options), expected);
      }
      ++compared;
    }
  }
  EXPECT_GE(compared, 35u);
}

TEST(ChatTemplateTest, RejectsUnsupportedSyntax) {
  const std::pair<const char*, const char*> cases[] = {
      {"{% macro greet(name) %}hi{% endmacro %}", "unsupported Jinja tag 'macro'"},
      {"{% raw %}{{ x }}{% endraw %}", "unsupported Jinja tag 'raw'"},
      {"{{ messages | upper }}", "unsupported Jinja filter 'upper'"},
      {"{{ x is divisibleby }}", "unsupported Jinja test 'divisibleby'"},
      {"{{ range(3) }}", "function or method call 'range()'"},
      {"{{ 'a' ~ 'b' }}", "unsupported Jinja operator '~'"},
      {"{% if messages|length * 2 %}{% endif %}", "unsupported Jinja operator '*'"},
      {"{{ 'a' if x else 'b' }}", "unexpected 'if'"},
      {"{{ 'a'.upper() }}", "function or method call '.upper()'"},
      {"{% set a, b = x %}", "multiple targets"},
      {"{% for a, b in x %}{% endfor %}", "unpacking"},
      {"{% for m in messages %}{% else %}{% endfor %}", "'for' ... 'else'"},
      {"{{ 7 % 2 }}", "unsupported Jinja operator '%'"},
      {"{{ x | tojson(2) }}", "'tojson()' takes 0 positional arguments here, not 1"},
      {"{{ x | tojson(sort_keys=true) }}", "unsupported argument 'sort_keys' to 'tojson()'"},
      {"{{ x.split('a', 1) }}", "'.split()' takes 0 to 1 positional arguments here, not 2"},
      {"{{ namespace(a=1, a=2) }}", "argument 'a' repeated"},
      {"{{ x.strip(chars='a') }}", "unsupported argument 'chars'"},
      {"{{ x | trim('a') }}", "unsupported arguments to the 'trim' filter"},
      {"{{ messages[0](1) }}", "calling an expression"},
      {"{{ x[1:2:3:4] }}", "expected ']' after a slice"},
      {"{{ 1.5 }}", "number literal"},
      {"{{ loop.revindex }}", "loop.revindex"},
      {"{% if x %}never closed", "'if' is never closed"},
      {"{% endfor %}", "unexpected 'endfor'"},
      {"{{ 'unterminated }}", "unterminated string"},
      {"{{ x ", "not closed"},
  };
  for (const auto& [source, expected] : cases) {
    const std::string message = ErrorOf(source);
    EXPECT_NE(message.find(expected), std::string::npos) << source << " -> " << message;
    EXPECT_NE(message.find("chat template line 1"), std::string::npos) << message;
  }
  EXPECT_NE(ErrorOf("ok\n\n{% with x = 1 %}{% endwith %}").find("line 3: unsupported Jinja tag 'with'"),
            std::string::npos);
}

TEST(ChatTemplateTest, RuntimeErrorsAreErrors) {
  const std::vector<ChatMessage> none;
  EXPECT_NE(ErrorOf("{{ messages[0]['role'] }}", &none).find("list index 0 out of range"), std::string::npos);
  EXPECT_NE(ErrorOf("{{ nothing + 'x' }}", &none).find("'nothing' is undefined"), std::string::npos);
  EXPECT_NE(ErrorOf("{{ 'x' + 1 }}", &none).find("cannot add a string and an integer"), std::string::npos);
  EXPECT_NE(ErrorOf("{{ messages }}", &none).find("printing a list"), std::string::npos);
  EXPECT_NE(ErrorOf("{% set ns.found = true %}", &none).find("'ns', which is undefined, not a namespace"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf("{{ raise_exception('no tools here') }}", &none).find("the template raised an error: no tools here"),
      std::string::npos);
  EXPECT_NE(ErrorOf("{{ messages.strip() }}", &none).find("'.strip()' needs a string, not a list"), std::string::npos);
  EXPECT_NE(ErrorOf("{{ 'x'.startswith(none) }}", &none).find("must be a string, not none"), std::string::npos);
  EXPECT_NE(ErrorOf("{{ 'x'.split('') }}", &none).find("empty separator"), std::string::npos);
  EXPECT_NE(ErrorOf("{{ 'x'[::0] }}", &none).find("slice step cannot be zero"), std::string::npos);
  EXPECT_NE(ErrorOf("{{ 'x'['a':] }}", &none).find("slice indices must be integers"), std::string::npos);
  EXPECT_NE(ErrorOf("{{ 1 < 'a' }}", &none).find("cannot compare an integer with a string"), std::string::npos);
  EXPECT_NE(ErrorOf("{{ nothing > 1 }}", &none).find("'nothing' is undefined"), std::string::npos);
  EXPECT_NE(ErrorOf("{{ 'a' - 1 }}", &none).find("cannot subtract an integer from a string"), std::string::npos);
  EXPECT_NE(ErrorOf("{{ nothing | tojson }}", &none).find("tojson cannot write undefined"), std::string::npos);
}

// The fixture prompts were made by transformers' apply_chat_template with add_generation_prompt;
// rendering the same conversations and tokenizing must give the same text and ids.
TEST(ChatTemplateTest, FixturePromptsEndToEnd) {
  std::ifstream file(kData / "qwen2-tiny/chat_prompts.json");
  const nlohmann::json prompts = nlohmann::json::parse(file)["prompts"];
  const Tokenizer tokenizer = Tokenizer::FromTokenizerJson(kData / "qwen2-tiny/tokenizer.json");
  const std::pair<const char*, std::vector<ChatMessage>> conversations[] = {
      {"chat_en", {{"user", "What is the capital of France?"}}},
      {"chat_multi",
       {{"system", "You are a terse assistant."},
        {"user", "你好，请介绍一下你自己。"},
        {"assistant", "我是一个助手。"},
        {"user", "Write a haiku about GPUs 🚀"}}},
  };
  for (const auto& [name, messages] : conversations) {
    SCOPED_TRACE(name);
    const std::string text = FixtureTemplate().Apply(messages, true);
    EXPECT_EQ(text, prompts[name]["prompt_text"].get<std::string>());
    EXPECT_EQ(tokenizer.Encode(text), prompts[name]["input_ids"].get<std::vector<uint32_t>>());
  }
}

}  // namespace
}  // namespace qvk::test
