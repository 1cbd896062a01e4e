// The Qwen2 tokenizer against transformers' ids and decoded text (tokenizer_reference.json, the
// fixture prompts) and llama.cpp's Qwen2 vectors; BPE rank order on a synthetic vocabulary;
// streaming decode of characters split across tokens; errors for bad ids and bad files.
//
// Sections: Qwen2 vocabulary / streaming / synthetic vocabularies / tokenizer.json errors
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "model/tokenizer.h"
#include "tests/test_util.h"

namespace qvk::test {
namespace {

const std::filesystem::path kData = qvk::test::TestDataDir();
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

nlohmann::json ReadJson(const std::filesystem::path& path) {
  return nlohmann::json::parse(ReadFile(path));
}

// Loading the 5 MB tokenizer.json takes a while; every test shares one.
const Tokenizer& Qwen2() {
  static const Tokenizer tokenizer = Tokenizer::FromTokenizerJson(kData / "qwen2-tiny/tokenizer.json");
  return tokenizer;
}

// --- Qwen2 vocabulary -----------------------------------------------------------------------

TEST(TokenizerTest, LoadsQwen2Vocabulary) {
  const Tokenizer& tokenizer = Qwen2();
  EXPECT_EQ(tokenizer.vocab_size(), 151665u);
  EXPECT_EQ(tokenizer.TokenId("Ġhello"), 23811u);
  EXPECT_EQ(tokenizer.TokenText(23811), "Ġhello");
  EXPECT_EQ(tokenizer.TokenId("<|im_end|>"), 151645u);
  EXPECT_EQ(tokenizer.TokenId("no such token"), std::nullopt);
  EXPECT_TRUE(tokenizer.IsSpecial(151643));   // <|endoftext|>
  EXPECT_FALSE(tokenizer.IsSpecial(151657));  // <tool_call> is added but not special
  EXPECT_FALSE(tokenizer.IsSpecial(23811));
}

TEST(TokenizerTest, MatchesTransformersReference) {
  const nlohmann::json reference = ReadJson(kData / "tokenizer/tokenizer_reference.json");
  ASSERT_EQ(reference["cases"].size(), 16u);
  for (const auto& c : reference["cases"]) {
    const std::string text = c["text"];
    SCOPED_TRACE(text);
    const std::vector<uint32_t> expected = c["ids"];
    const std::vector<uint32_t> ids = Qwen2().Encode(text);
    EXPECT_EQ(ids, expected);
    EXPECT_EQ(Qwen2().Decode(expected), c["decoded"].get<std::string>());
  }
}

TEST(TokenizerTest, MatchesLlamaCppVectors) {
  const auto vectors = LlamaCppVectors();
  ASSERT_EQ(vectors.size(), 46u);
  for (size_t i = 0; i < vectors.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "vector " << i << ": " << vectors[i].text);
    EXPECT_EQ(Qwen2().Encode(vectors[i].text), vectors[i].ids);
  }
}

TEST(TokenizerTest, EncodesFixtureChatPrompts) {
  const nlohmann::json prompts = ReadJson(kData / "qwen2-tiny/chat_prompts.json")["prompts"];
  for (const char* name : {"chat_en", "chat_multi"}) {
    SCOPED_TRACE(name);
    const std::string text = prompts[name]["prompt_text"];
    const std::vector<uint32_t> ids = prompts[name]["input_ids"];
    EXPECT_EQ(Qwen2().Encode(text), ids);
    EXPECT_EQ(Qwen2().Decode(ids), text);
  }
}

// BPE's work, counted rather than timed: its merge queue keeps a piece of n bytes at
// O(n log n), where rescanning every pair after each merge would be O(n^2).
uint64_t BpeStepBound(size_t bytes) {
  const double n = static_cast<double>(bytes);
  return static_cast<uint64_t>(4.0 * n * std::log2(std::max(n, 2.0)));
}

TEST(TokenizerTest, EncodesLongPromptInNLogNSteps) {
  const nlohmann::json prompt = ReadJson(kData / "qwen2-tiny/long_prompt.json");
  const std::string text = prompt["prompt_text"];
  const std::vector<uint32_t> expected = prompt["input_ids"];
  ASSERT_EQ(expected.size(), 1271u);
  EncodeStats stats;
  EXPECT_EQ(Qwen2().Encode(text, &stats), expected);
  EXPECT_GT(stats.bpe_steps, 0u);
  EXPECT_LE(stats.bpe_steps, BpeStepBound(text.size()));
}

// One regex piece of 100k characters: BPE must not go quadratic on it.
TEST(TokenizerTest, EncodesLongPiecesInNLogNSteps) {
  const auto long_pieces = [](size_t n) { return std::string(n, 'a') + std::string(n, ' ') + "b"; };
  const std::string text = long_pieces(100000);
  EncodeStats stats;
  const std::vector<uint32_t> ids = Qwen2().Encode(text, &stats);
  EXPECT_EQ(Qwen2().Decode(ids), text);
  EXPECT_LT(ids.size(), text.size() / 4);
  EXPECT_LE(stats.bpe_steps, BpeStepBound(text.size()));

  // Twice the input, about twice the work (n log n grows by a factor of 2.1 here; n^2 by 4).
  EncodeStats doubled;
  Qwen2().Encode(long_pieces(200000), &doubled);
  EXPECT_LE(static_cast<double>(doubled.bpe_steps), 2.2 * static_cast<double>(stats.bpe_steps));
}

TEST(TokenizerTest, MatchesSpecialTokensInsideText) {
  const std::vector<uint32_t> ids = Qwen2().Encode("<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(ids, (std::vector<uint32_t>{151644, 872, 198, 6023, 151645}));
  EXPECT_EQ(Qwen2().Decode(ids), "<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(Qwen2().Decode(ids, /*skip_special=*/true), "user\nhi");
  // Added tokens that are not special are matched in text too, and kept when skipping specials.
  const std::vector<uint32_t> tool = Qwen2().Encode("a<tool_call>b");
  EXPECT_EQ(tool, (std::vector<uint32_t>{64, 151657, 65}));
  EXPECT_EQ(Qwen2().Decode(tool, /*skip_special=*/true), "a<tool_call>b");
  // A near miss is ordinary text.
  EXPECT_EQ(Qwen2().Decode(Qwen2().Encode("<|im_start|")), "<|im_start|");
  EXPECT_NE(Qwen2().Encode("<|im_start|")[0], 151644u);
}

TEST(TokenizerTest, DecodeReplacesInvalidUtf8LikePython) {
  // " 😁" is 26525 (space, F0 9F 98) + 223 (81); 75360 is F0 9F 98 alone. Apart, each run of
  // those bytes is one maximal invalid subpart, so one U+FFFD.
  ASSERT_EQ(Qwen2().Encode(" 😁"), (std::vector<uint32_t>{26525, 223}));
  const std::string replacement(kReplacement);
  EXPECT_EQ(Qwen2().Decode(std::vector<uint32_t>{75360}), replacement);
  EXPECT_EQ(Qwen2().Decode(std::vector<uint32_t>{223, 75360}), replacement + replacement);
  EXPECT_EQ(Qwen2().Decode(std::vector<uint32_t>{75360, 223}), "😁");
  EXPECT_EQ(Qwen2().Decode(std::vector<uint32_t>{26525, 9707}), " " + replacement + "Hello");
}

TEST(TokenizerTest, DecodeRejectsUnknownIds) {
  const uint32_t past_end = Qwen2().vocab_size();
  EXPECT_THROW(Qwen2().Decode(std::vector<uint32_t>{9707, past_end}), Error);
  EXPECT_THROW(Qwen2().TokenText(past_end), Error);
  EXPECT_THROW(Qwen2().IsSpecial(151936), Error);
  try {
    Qwen2().Decode(std::vector<uint32_t>{151936});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("151936"), std::string::npos) << e.what();
  }
}

TEST(TokenizerTest, EncodeRejectsInvalidUtf8) {
  EXPECT_THROW(Qwen2().Encode("ab\xC3("), Error);
  EXPECT_THROW(Qwen2().Encode("\xED\xA0\x80"), Error);  // a surrogate
  EXPECT_TRUE(Qwen2().Encode("").empty());
}

// Encoding the same text from many threads at once gives the same ids.
TEST(TokenizerTest, EncodesConcurrently) {
  const std::string text = "Concurrency: 你好 🚀 <|im_end|> " + std::string(200, 'x');
  const std::vector<uint32_t> expected = Qwen2().Encode(text);
  std::vector<std::vector<uint32_t>> results(8);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) result = Qwen2().Encode(text);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_EQ(result, expected);
}

// --- streaming ------------------------------------------------------------------------------

TEST(StreamDecoderTest, HoldsBackCharactersSplitAcrossTokens) {
  const std::string text = "Emoji 😁🦙👩‍👩‍👧 and CJK 我想在apple工作 and ꙮ, 𝄞.";
  const std::vector<uint32_t> ids = Qwen2().Encode(text);
  StreamDecoder stream(Qwen2());
  std::string streamed;
  size_t held_back = 0;
  for (const uint32_t id : ids) {
    const std::string piece = stream.Push(id);
    if (piece.empty()) ++held_back;
    EXPECT_EQ(piece.find(kReplacement), std::string::npos) << "token " << id;
    streamed += piece;
  }
  streamed += stream.Flush();
  EXPECT_GT(held_back, 0u) << "no character was split across tokens, so nothing was tested";
  EXPECT_EQ(streamed, Qwen2().Decode(ids));
  EXPECT_EQ(streamed, text);
}

TEST(StreamDecoderTest, PaddingIdsPastTheVocabularyDecodeToNothing) {
  StreamDecoder decoder(Qwen2());
  std::string text = decoder.Push(9707);  // "Hello"
  text += decoder.Push(151700);           // a padding row of the 151936-row embedding
  text += decoder.Push(1879);             // " world"
  text += decoder.Flush();
  EXPECT_EQ(text, "Hello world");
}

TEST(StreamDecoderTest, FlushReplacesAnUnfinishedCharacter) {
  StreamDecoder stream(Qwen2());
  EXPECT_EQ(stream.Push(9707), "Hello");
  EXPECT_EQ(stream.Push(75360), "");  // F0 9F 98: three bytes of a four-byte character
  EXPECT_EQ(stream.Flush(), kReplacement);
  EXPECT_EQ(stream.Flush(), "");
  // An invalid byte is replaced at once, and does not hold back what follows.
  EXPECT_EQ(stream.Push(223), kReplacement);
  EXPECT_EQ(stream.Push(26525), " ");
  EXPECT_EQ(stream.Push(9707), std::string(kReplacement) + "Hello");
}

TEST(StreamDecoderTest, SkipsSpecialTokensUnlessAsked) {
  const std::vector<uint32_t> ids = Qwen2().Encode("<|im_start|>assistant\nOK<|im_end|>");
  StreamDecoder skipping(Qwen2());
  StreamDecoder keeping(Qwen2(), /*skip_special=*/false);
  std::string skipped, kept;
  for (const uint32_t id : ids) {
    skipped += skipping.Push(id);
    kept += keeping.Push(id);
  }
  EXPECT_EQ(skipped, "assistant\nOK");
  EXPECT_EQ(kept, "<|im_start|>assistant\nOK<|im_end|>");
}

// --- synthetic vocabularies -----------------------------------------------------------------

// GPT-2's bytes_to_unicode, written out independently of the tokenizer's own table.
TokenizerVocab SyntheticVocab(std::vector<std::pair<std::string, std::string>> merges) {
  TokenizerVocab vocab;
  vocab.tokens = ByteLevelAlphabet();
  for (const char* token : {"ab", "bc", "abc"}) vocab.tokens.emplace_back(token);
  vocab.merges = std::move(merges);
  vocab.pre_tokenizer_regex = R"(\p{L}+|\s+|.)";
  return vocab;
}

TEST(TokenizerTest, MergesLowestRankFirst) {
  const Tokenizer bc_first(SyntheticVocab({{"b", "c"}, {"a", "b"}}));
  const Tokenizer ab_first(SyntheticVocab({{"a", "b"}, {"b", "c"}}));
  // Byte tokens have the byte's value as id; "ab", "bc", "abc" follow.
  const uint32_t a = 'a', c = 'c', space = ' ', ab = 256, bc = 257, abc = 258;
  EXPECT_EQ(bc_first.Encode("abc"), (std::vector<uint32_t>{a, bc}));
  EXPECT_EQ(ab_first.Encode("abc"), (std::vector<uint32_t>{ab, c}));
  const Tokenizer chained(SyntheticVocab({{"b", "c"}, {"a", "bc"}}));
  EXPECT_EQ(chained.Encode("abc abc"), (std::vector<uint32_t>{abc, space, abc}));
  EXPECT_EQ(chained.Decode(chained.Encode("abc abc")), "abc abc");
}

TEST(TokenizerTest, RejectsInconsistentVocabularies) {
  EXPECT_THROW(Tokenizer(SyntheticVocab({{"a", "x"}})), Error);  // "ax" is no token
  TokenizerVocab duplicate = SyntheticVocab({});
  duplicate.tokens.push_back("ab");
  EXPECT_THROW(Tokenizer(std::move(duplicate)), Error);
  TokenizerVocab bad_regex = SyntheticVocab({});
  bad_regex.pre_tokenizer_regex = "(unclosed";
  EXPECT_THROW(Tokenizer(std::move(bad_regex)), Error);
  TokenizerVocab missing_byte = SyntheticVocab({});
  missing_byte.tokens[0] = "not a byte";
  EXPECT_THROW(Tokenizer(std::move(missing_byte)), Error);
  TokenizerVocab bad_added = SyntheticVocab({});
  bad_added.added.push_back({999, "<x>", true});
  EXPECT_THROW(Tokenizer(std::move(bad_added)), Error);
}

// --- tokenizer.json errors ------------------------------------------------------------------

class TokenizerJsonTest : public ::testing::Test {
 protected:
  std::filesystem::path Write(const std::string& name, const std::string& contents) {
    const std::filesystem::path path = std::filesystem::path(testing::TempDir()) / name;
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }

  // The message of the Error FromTokenizerJson throws, checked to name the file.
  static std::string LoadError(const std::filesystem::path& path) {
    try {
      Tokenizer::FromTokenizerJson(path);
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path.string()), std::string::npos) << message;
      return message;
    }
    ADD_FAILURE() << "no error for " << path;
    return {};
  }
};

TEST_F(TokenizerJsonTest, LoadsBothMergeFormats) {
  for (const char* merges : {R"(["a b"])", R"([["a", "b"]])"}) {
    const Tokenizer tokenizer =
        Tokenizer::FromTokenizerJson(Write("minimal.json", MinimalJson(AlphabetVocabJson({"ab"}), merges)));
    EXPECT_EQ(tokenizer.Encode("ab"), std::vector<uint32_t>{256}) << merges;
  }
}

TEST_F(TokenizerJsonTest, ReportsMissingFile) {
  const std::string message = LoadError(std::filesystem::path(testing::TempDir()) / "does-not-exist.json");
  EXPECT_NE(message.find("cannot open"), std::string::npos) << message;
}

TEST_F(TokenizerJsonTest, ReportsBadJson) {
  const std::string message = LoadError(Write("truncated.json", R"({"model": {"type": "BPE", "vocab": {)"));
  EXPECT_NE(message.find("parse error"), std::string::npos) << message;
}

TEST_F(TokenizerJsonTest, ReportsMissingMerges) {
  std::string json = MinimalJson(AlphabetVocabJson({}), "[]");
  json.replace(json.find(R"(, "merges": [])"), 14, "");
  const std::string message = LoadError(Write("no-merges.json", json));
  EXPECT_NE(message.find("model.merges is missing"), std::string::npos) << message;
}

TEST_F(TokenizerJsonTest, ReportsMergeOfUnknownTokens) {
  const std::string message = LoadError(Write("bad-merge.json", MinimalJson(AlphabetVocabJson({}), R"(["a b"])")));
  EXPECT_NE(message.find("'ab' is not in the vocabulary"), std::string::npos) << message;
}

TEST_F(TokenizerJsonTest, ReportsUnsupportedModels) {
  std::string json = MinimalJson(AlphabetVocabJson({}), "[]");
  json.replace(json.find(R"("type": "BPE")"), 13, R"("type": "WordPiece")");
  EXPECT_NE(LoadError(Write("wordpiece.json", json)).find("WordPiece"), std::string::npos);
  EXPECT_NE(LoadError(Write("array.json", "[1, 2]")).find("tokenizer.json is not an object"), std::string::npos);
}

}  // namespace
}  // namespace qvk::test
