// The chat-template interpreter: the fixture's Qwen2.5 template and the classic Qwen1.5/Qwen2
// one against prompts written out by hand, Jinja's whitespace control and expression rules
// (expected output as Jinja 3 renders with trim_blocks and lstrip_blocks, like transformers),
// rejection of syntax outside the subset, and the fixture chat prompts end to end.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "base/error.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"

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

TEST(ChatTemplateTest, RejectsUnsupportedSyntax) {
  const std::pair<const char*, const char*> cases[] = {
      {"{% macro greet(name) %}hi{% endmacro %}", "unsupported Jinja tag 'macro'"},
      {"{% raw %}{{ x }}{% endraw %}", "unsupported Jinja tag 'raw'"},
      {"{{ messages | tojson }}", "unsupported Jinja filter 'tojson'"},
      {"{{ x is string }}", "unsupported Jinja test 'string'"},
      {"{{ raise_exception('no') }}", "function or method call"},
      {"{{ 'a' ~ 'b' }}", "unsupported Jinja operator '~'"},
      {"{% if messages|length > 1 %}{% endif %}", "unsupported Jinja operator '>'"},
      {"{{ 'a' if x else 'b' }}", "unexpected 'if'"},
      {"{% set ns = namespace(found=false) %}", "function or method call"},
      {"{% set ns.found = true %}", "attribute assignment"},
      {"{% for a, b in x %}{% endfor %}", "unpacking"},
      {"{% for m in messages %}{% else %}{% endfor %}", "'for' ... 'else'"},
      {"{{ messages[1:] }}", "unsupported Jinja operator ':'"},
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
