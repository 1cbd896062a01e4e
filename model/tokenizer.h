#pragma once
// Qwen2's byte-level BPE tokenizer, matching Hugging Face transformers id for id: added tokens
// split out of the raw text, NFC, the pre-tokenizer regex (PCRE2), GPT-2 byte-to-unicode mapping,
// then BPE by merge rank. Immutable once built, so one Tokenizer may serve many threads.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qvk {

// Everything a tokenizer needs, from tokenizer.json or GGUF metadata.
struct TokenizerVocab {
  std::vector<std::string>
      tokens;  // id -> token text in byte-level form (e.g. "Ġhello"); added tokens hold their content
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  struct Added {
    uint32_t id;
    std::string content;
    bool special;
  };
  std::vector<Added> added;  // matched in the raw text before pre-tokenization
  std::string pre_tokenizer_regex;
  bool nfc = true;
};

// Work Encode did, counted for tests that check its complexity without timing it.
struct EncodeStats {
  uint64_t bpe_steps = 0;  // adjacent pairs looked up in the merge table plus candidates taken from the queue
};

class Tokenizer {
 public:
  explicit Tokenizer(TokenizerVocab vocab);  // validates; throws qvk::Error
  // Token ids must stay below `declared_vocab_size` (config.json's vocab_size) when it is given.
  static Tokenizer FromTokenizerJson(const std::filesystem::path& path,
                                     std::optional<uint32_t> declared_vocab_size = std::nullopt);

  // Throws qvk::Error when `text` is not valid UTF-8. `stats`, when given, accumulates the work done.
  std::vector<uint32_t> Encode(std::string_view text, EncodeStats* stats = nullptr) const;
  // Invalid UTF-8 in the joined bytes becomes U+FFFD, as Python's errors="replace"; an unknown id throws.
  std::string Decode(std::span<const uint32_t> ids, bool skip_special = false) const;

  uint32_t vocab_size() const;
  std::optional<uint32_t> TokenId(std::string_view token_text) const;
  const std::string& TokenText(uint32_t id) const;  // throws qvk::Error for an unknown id
  bool IsSpecial(uint32_t id) const;                // throws qvk::Error for an unknown id

 private:
  friend class StreamDecoder;
  struct Impl;

  // The raw bytes `id` stands for; empty for a special token when `skip_special`.
  std::string_view TokenBytes(uint32_t id, bool skip_special) const;

  std::shared_ptr<const Impl> impl_;
};

// Decodes one token at a time for streaming output: returns the new text each token completes,
// holding back a multi-byte UTF-8 sequence split across tokens until it completes, so that the
// concatenated outputs plus Flush() equal Decode() of all the ids. Ids past the vocabulary (the
// padding rows of a model's embedding) decode to nothing, as in transformers.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = true);
  std::string Push(uint32_t id);
  std::string Flush();  // whatever is held back (as U+FFFD if never completed)

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace qvk
