// Model files written to crash, hang or exhaust the program (issue 10): each is generated here,
// small, and must end in an Error that names the file and the limit (model/input_limits.h), at
// once: deep JSON, deep or long template expressions, runaway template loops and strings, a
// token id far past the vocabulary, a FIFO where a file should be, integer overflow in a template.
//
// Sections: helpers / tokenizer.json / config.json / chat template parsing / chat template
// rendering / special files
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/error.h"
#include "model/chat_template.h"
#include "model/config.h"
#include "model/input_limits.h"
#include "model/model_files.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

using namespace input_limits;

// --- helpers --------------------------------------------------------------------------------

std::string Repeat(std::string_view piece, size_t times) {
  std::string out;
  out.reserve(piece.size() * times);
  for (size_t i = 0; i < times; ++i) out += piece;
  return out;
}

// `open` and `close` around `inner`, `depth` times.
std::string Nested(std::string_view open, std::string_view inner, std::string_view close, size_t depth) {
  return Repeat(open, depth) + std::string(inner) + Repeat(close, depth);
}

const std::string kMillionDeepArray = Nested("[", "", "]", 1'000'000);
const std::string kDeepArray = Nested("[", "", "]", 100'000);  // within the size limit of every file
const std::string kJsonTooDeep = fmt::format("nests deeper than {} levels", kMaxJsonDepth);

std::string TokenizerJsonError(const TempDir& dir, const std::string& json,
                               std::optional<uint32_t> declared_vocab_size = std::nullopt) {
  const auto path = dir.Write("tokenizer.json", json);
  const std::string message = ErrorOf([&] { Tokenizer::FromTokenizerJson(path, declared_vocab_size); });
  ExpectMentions(message, {path.string()});
  return message;
}

// A valid minimal tokenizer.json with `replace` put in place of `original`.
std::string MinimalJsonWith(std::string_view original, const std::string& replacement) {
  std::string json = MinimalJson(AlphabetVocabJson({}), "[]");
  const size_t at = json.find(original);
  EXPECT_NE(at, std::string::npos) << original;
  return json.replace(at, original.size(), replacement);
}

const std::vector<ChatMessage> kMessages = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}};

std::string TemplateError(const std::string& source) {
  return ErrorOf([&] { ChatTemplate(source).Apply(kMessages, /*add_generation_prompt=*/true); });
}

// --- tokenizer.json -------------------------------------------------------------------------

TEST(HostileFilesTest, TokenizerJsonNestedTooDeepIsRefusedWhileParsing) {
  const TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"model.dropout",
       MinimalJsonWith(R"("type": "BPE",)", R"("type": "BPE", "dropout": )" + kMillionDeepArray + ",")},
      {"model.merges", MinimalJson(AlphabetVocabJson({}), kMillionDeepArray)},
      {"normalizer member",
       MinimalJsonWith(R"({"type": "NFC"})", R"({"type": "NFKD", "x": )" + kMillionDeepArray + "}")},
      {"200k nested Sequence normalizers",
       MinimalJsonWith(R"({"type": "NFC"})",
                       Nested(R"({"type": "Sequence", "normalizers": [)", R"({"type": "NFC"})", "]}", 200'000))},
      {"pre-tokenizer step member",
       MinimalJsonWith(R"("invert": false)", R"("invert": false, "x": )" + kMillionDeepArray)},
  };
  for (const auto& [name, json] : cases) {
    SCOPED_TRACE(name);
    ExpectMentions(TokenizerJsonError(dir, json), {"tokenizer.json", kJsonTooDeep});
  }
}

TEST(HostileFilesTest, TokenizerJsonIdsStayWithinTheVocabulary) {
  const TempDir dir;
  // One token given id 300000000 would size a table of 300 million entries.
  std::string vocab = AlphabetVocabJson({});
  vocab.back() = ',';
  const std::string far_id = MinimalJson(vocab + R"("ab": 300000000})", "[]");
  ExpectMentions(TokenizerJsonError(dir, far_id),
                 {"'ab' has id 300000000", "not an integer below 257", "the number of tokens listed"});
  // A negative id once wrapped to 4294967295 before sizing that table.
  ExpectMentions(TokenizerJsonError(dir, MinimalJson(vocab + R"("ab": -1})", "[]")),
                 {"'ab' has id -1", "not an integer below 257"});
  // Below the number listed, but past what config.json declares.
  const std::string dense = MinimalJson(AlphabetVocabJson({"ab", "cd"}), "[]");
  ExpectMentions(TokenizerJsonError(dir, dense, 257), {"'cd' has id 257", "below 257", "config.json's vocab_size"});
  EXPECT_NO_THROW(Tokenizer::FromTokenizerJson(dir.Write("tokenizer.json", dense), 258));
}

TEST(HostileFilesTest, TokenizerJsonOverTheSizeLimitIsRefusedUnread) {
  const TempDir dir;
  const auto path = dir.Write("tokenizer.json", "");
  std::filesystem::resize_file(path, kMaxTokenizerJsonBytes + 1);  // sparse: nothing is written
  ExpectMentions(ErrorOf([&] { Tokenizer::FromTokenizerJson(path); }),
                 {path.string(), fmt::format("over the limit of {} bytes", kMaxTokenizerJsonBytes)});
}

// --- config.json ----------------------------------------------------------------------------

TEST(HostileFilesTest, ConfigFilesNestedTooDeepOrTooLargeAreRefused) {
  const TempDir dir;
  const auto deep = dir.Write("config.json", R"({"architectures": )" + kDeepArray + "}");
  ExpectMentions(ErrorOf([&] { ModelConfig::FromJsonFile(deep); }), {deep.string(), kJsonTooDeep});
  const auto generation = dir.Write("generation_config.json", R"({"eos_token_id": )" + kDeepArray + "}");
  ExpectMentions(ErrorOf([&] { GenerationConfig::FromJsonFile(generation); }), {generation.string(), kJsonTooDeep});
  const auto large = dir.Write("config.json", "{}" + std::string(kMaxConfigJsonBytes, ' '));
  ExpectMentions(ErrorOf([&] { ModelConfig::FromJsonFile(large); }),
                 {large.string(), fmt::format("over the limit of {} bytes", kMaxConfigJsonBytes)});
}

// nlohmann reports a number past a double's range as out_of_range, not as a parse error.
TEST(HostileFilesTest, NumbersPastADoubleAreInvalidJson) {
  const TempDir dir;
  const auto config = dir.Write("config.json", R"({"rope_theta": 1e999})");
  ExpectMentions(ErrorOf([&] { ModelConfig::FromJsonFile(config); }), {config.string(), "not valid JSON"});
  const auto index = dir.Write("model.safetensors.index.json", R"({"weight_map": {}, "total_size": -8e2072})");
  ExpectMentions(ErrorOf([&] { SafetensorsModel model(dir.path()); }), {index.string(), "not valid JSON"});
  const auto tokenizer_config = dir.Write("tokenizer_config.json", R"({"chat_template": "x", "n": 5.7e5450})");
  ExpectMentions(ErrorOf([&] { ChatTemplate::FromTokenizerConfig(tokenizer_config); }),
                 {tokenizer_config.string(), "not valid JSON"});
}

TEST(HostileFilesTest, TokenizerConfigNestedTooDeepIsRefused) {
  const TempDir dir;
  const auto path =
      dir.Write("tokenizer_config.json", R"({"chat_template": "x", "bos_token": )" + kMillionDeepArray + "}");
  ExpectMentions(ErrorOf([&] { ChatTemplate::FromTokenizerConfig(path); }), {path.string(), kJsonTooDeep});
}

// --- chat template parsing ------------------------------------------------------------------

TEST(HostileFilesTest, TemplateExpressionsNestedOrChainedTooDeepAreRefused) {
  const std::string too_deep = fmt::format("expression nests deeper than {} levels", kMaxTemplateExpressionDepth);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"20k parentheses", "{{ " + Nested("(", "1", ")", 20'000) + " }}"},
      {"not x200k", "{{ " + Repeat("not ", 200'000) + "true }}"},
      {"'a' + x100k", "{{ 'a'" + Repeat(" + 'a'", 100'000) + " }}"},
      {"x[0] x100k", "{{ messages" + Repeat("[0]", 100'000) + " }}"},
      {".a x100k", "{{ messages" + Repeat(".a", 100'000) + " }}"},
      {"| trim x100k", "{{ 'a'" + Repeat(" | trim", 100'000) + " }}"},
      {"is defined x100k", "{{ 'a'" + Repeat(" is defined", 50'000) + " }}"},
      {"subscripts inside subscripts x20k", "{{ " + Nested("messages[", "0", "]", 20'000) + " }}"},
      {".strip() x100k", "{{ 'a'" + Repeat(".strip()", 100'000) + " }}"},
      {"[::-1] x100k", "{{ 'a'" + Repeat("[::-1]", 100'000) + " }}"},
      {"slices inside slices x20k", "{{ " + Nested("messages[:", "1", "]", 20'000) + " }}"},
      {"namespace arguments inside arguments x20k", "{{ " + Nested("namespace(a=", "1", ")", 20'000) + " }}"},
      {"| tojson x100k", "{{ 'a'" + Repeat(" | tojson", 100'000) + " }}"},
      {"- x100k", "{{ 1" + Repeat(" - 1", 100'000) + " }}"},
  };
  for (const auto& [name, source] : cases) {
    SCOPED_TRACE(name);
    ASSERT_LE(source.size(), kMaxTemplateBytes);
    ExpectMentions(TemplateError(source), {"chat template line 1", too_deep});
  }
  // As deep as allowed still works.
  EXPECT_EQ(ChatTemplate("{{ 'a'" + Repeat(" + 'a'", kMaxTemplateExpressionDepth / 2) + " }}").Apply(kMessages, false),
            std::string(kMaxTemplateExpressionDepth / 2 + 1, 'a'));
}

TEST(HostileFilesTest, TemplateBlocksNestedTooDeepAreRefused) {
  const std::string too_deep = fmt::format("blocks nest deeper than {} levels", kMaxTemplateBlockDepth);
  ExpectMentions(TemplateError(Nested("{% for m in messages %}", "x", "{% endfor %}", 10'000)), {too_deep});
  ExpectMentions(TemplateError(Nested("{% if true %}", "x", "{% endif %}", 40'000)), {too_deep});
  EXPECT_EQ(ChatTemplate(Nested("{% if true %}", "x", "{% endif %}", kMaxTemplateBlockDepth)).Apply(kMessages, false),
            "x");
}

TEST(HostileFilesTest, TemplatesOverTheSizeLimitAreRefused) {
  const std::string too_large = fmt::format("over the limit of {} bytes", kMaxTemplateBytes);
  ExpectMentions(TemplateError("{{ 'a'" + Repeat(" + 'a'", 1'000'000) + " }}"), {"chat template", too_large});
  ExpectMentions(TemplateError(Repeat("{% set a = 1 %}", 1'000'000)), {"chat template", too_large});
  ExpectMentions(TemplateError("{{ messages" + Repeat("[0]", 1'000'000) + " }}"), {"chat template", too_large});
  ExpectMentions(TemplateError("{{ 'a'" + Repeat(" | trim", 1'000'000) + " }}"), {"chat template", too_large});
  ExpectMentions(TemplateError(Nested("{% if true %}", "x", "{% endif %}", 100'000)), {"chat template", too_large});
}

// --- chat template rendering ----------------------------------------------------------------

TEST(HostileFilesTest, TemplatesThatGrowStringsOrListsWithoutBoundStop) {
  const std::string memory = "bytes of strings and lists";
  ExpectMentions(TemplateError("{% set s = 'abcdefgh' %}" + Repeat("{% set s = s + s %}", 30) + "{{ s }}"),
                 {"chat template line 1", memory});
  ExpectMentions(TemplateError("{% set l = messages %}" + Repeat("{% set l = l + l %}", 28) + "{{ l | length }}"),
                 {"chat template line 1", memory});
}

// Qwen3's constructs grow text too: tojson doubles the backslashes of its own output, an indent
// repeats on every line, split and slices copy, and a namespace keeps what a loop builds.
TEST(HostileFilesTest, TemplatesThatGrowTextThroughFiltersAndMethodsStop) {
  const std::string memory = "bytes of strings and lists";
  const std::string big = "{% set s = 'x' %}" + Repeat("{% set s = s + s %}", 20);        // 1 MiB
  const std::string many = "{% set l = messages %}" + Repeat("{% set l = l + l %}", 11);  // 6144 messages
  ExpectMentions(TemplateError("{% set s = 'x' %}" + Repeat("{% set s = s | tojson %}", 40) + "{{ s }}"),
                 {"chat template line 1", memory});
  ExpectMentions(TemplateError(big + many + "{{ l | tojson(indent=s) }}"), {"chat template line 1", memory});
  ExpectMentions(TemplateError("{% set ns = namespace(s='ab') %}" + many +
                               "{% for m in l %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}"),
                 {"chat template line 1", memory});
  ExpectMentions(TemplateError(big + "{% set ns = namespace(l=s.split()) %}" + many +
                               "{% for m in l %}{% set ns.l = ns.l + (s + ' ').split() + ns.l %}{% endfor %}"),
                 {"chat template line 1", memory});
  // Each copies a 1 MiB string, 6144 times over.
  for (const char* body : {"{% set t = s[::-1][:1] %}", "{% set t = s.split('y') | length %}",
                           "{% set t = s.strip('y') | length %}", "{% set t = s | tojson %}"}) {
    SCOPED_TRACE(body);
    ExpectMentions(TemplateError(big + many + "{% for m in l %}" + body + "{% endfor %}"),
                   {"chat template line 1", memory});
  }
  // A namespace inside a namespace could come to hold itself.
  ExpectMentions(TemplateError("{% set ns = namespace(a=1) %}{% set ns.a = ns %}{{ ns.a.a }}"),
                 {"chat template line 1", "a namespace cannot hold another namespace"});
  ExpectMentions(TemplateError("{% set ns = namespace(a=1) %}{{ namespace(b=ns) }}"),
                 {"chat template line 1", "a namespace cannot hold another namespace"});
}

TEST(HostileFilesTest, TemplateSlicesWithExtremeBoundsStayInRange) {
  const std::string lowest = "(-9223372036854775807 - 1)";
  EXPECT_EQ(ChatTemplate("{{ 'abc'[::" + lowest + "] }}|{{ 'abc'[" + lowest + ":9223372036854775807] }}|{{ 'abc'[" +
                         lowest + "::" + lowest +
                         "] }}|{{ messages[9223372036854775807::-9223372036854775807]"
                         " | length }}|{{ messages[" +
                         lowest + ":" + lowest + ":-1] | length }}")
                .Apply(kMessages, false),
            "c|abc||1|0");
}

TEST(HostileFilesTest, TemplatesThatTouchLongStringsInALoopStop) {
  // A 16 MiB string (within the memory budget), then copied, compared and searched 6144 times.
  const std::string setup = "{% set s = 'x' %}" + Repeat("{% set s = s + s %}", 24) + "{% set l = messages %}" +
                            Repeat("{% set l = l + l %}", 11);
  for (const char* body :
       {"{% set t = s %}", "{% if s == s %}{% endif %}", "{% if 'y' in s %}{% endif %}", "{{ s | length }}",
        "{% if s.endswith('y') or s < s %}{% endif %}", "{% if s.startswith(s) %}{% endif %}"}) {
    SCOPED_TRACE(body);
    ExpectMentions(TemplateError(setup + "{% for m in l %}" + body + "{% endfor %}"),
                   {"chat template line 1", "rendering copied or compared more than"});
  }
}

TEST(HostileFilesTest, TemplatesThatLoopWithoutBoundStop) {
  // 3 messages doubled 11 times: 6144 items, so nested loops would run 4e9 times in all.
  const std::string loops = "{% set l = messages %}" + Repeat("{% set l = l + l %}", 11) +
                            "{% for a in l %}{% for b in l %}{% for c in l %}{% endfor %}{% endfor %}{% endfor %}";
  ExpectMentions(TemplateError(loops),
                 {"chat template line 1", fmt::format("took more than {} steps", kMaxRenderSteps)});
}

TEST(HostileFilesTest, TemplatesThatRenderTooMuchStop) {
  // A 1 MiB string printed 128 times: 134 MB.
  const std::string source = "{% set s = 'x' %}" + Repeat("{% set s = s + s %}", 20) + "{% set l = messages %}" +
                             Repeat("{% set l = l + l %}", 6) + "{% for m in l %}{{ s }}{% endfor %}";
  ExpectMentions(TemplateError(source), {"chat template line 1", "the rendered prompt would be over"});
}

TEST(HostileFilesTest, TemplateIntegerOverflowIsAnError) {
  ExpectMentions(TemplateError("{{ 9223372036854775807 + 1 }}"), {"overflows a 64-bit integer"});
  ExpectMentions(TemplateError("{{ -9223372036854775807 + -2 }}"), {"overflows a 64-bit integer"});
  ExpectMentions(TemplateError("{{ -(-9223372036854775807 + -1) }}"), {"overflows a 64-bit integer"});
  EXPECT_EQ(ChatTemplate("{{ -9223372036854775807 + -1 }}").Apply(kMessages, false), "-9223372036854775808");
}

// --- special files --------------------------------------------------------------------------

TEST(HostileFilesTest, FifosAreRefusedWithoutBlocking) {
  const TempDir dir;
  const auto fifo = dir.path() / "model-00001-of-00001.safetensors";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  dir.Write("model.safetensors.index.json",
            R"({"weight_map": {"lm_head.weight": "model-00001-of-00001.safetensors"}})");
  ExpectMentions(ErrorOf([&] { SafetensorsModel model(dir.path()); }), {fifo.string(), "not a regular file"});

  for (const char* name : {"tokenizer.json", "config.json", "tokenizer_config.json"}) {
    SCOPED_TRACE(name);
    ASSERT_EQ(::mkfifo((dir.path() / name).c_str(), 0600), 0);
  }
  ExpectMentions(ErrorOf([&] { Tokenizer::FromTokenizerJson(dir.path() / "tokenizer.json"); }),
                 {"tokenizer.json", "not a regular file"});
  ExpectMentions(ErrorOf([&] { ModelConfig::FromJsonFile(dir.path() / "config.json"); }),
                 {"config.json", "not a regular file"});
  ExpectMentions(ErrorOf([&] { ChatTemplate::FromTokenizerConfig(dir.path() / "tokenizer_config.json"); }),
                 {"tokenizer_config.json", "not a regular file"});

  // A FIFO named as the model itself: neither a folder nor a file to read.
  const auto model = dir.path() / "model.gguf";
  ASSERT_EQ(::mkfifo(model.c_str(), 0600), 0);
  ExpectMentions(ErrorOf([&] { ModelFiles files(model); }), {model.string(), "neither a model folder"});
}

}  // namespace
}  // namespace qvk::test
