// Sections: UTF-8 scanning / byte-level alphabet / Impl and validation / Encode / Decode and
// StreamDecoder / tokenizer.json
#include "model/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <functional>
#include <queue>
#include <tuple>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/bounded_json.h"
#include "base/error.h"
#include "model/input_limits.h"
#include "model/mapped_file.h"

namespace qvk {
namespace {

// --- UTF-8 scanning -------------------------------------------------------------------------

// One step of UTF-8 decoding. Invalid input is consumed one "maximal subpart" at a time, the
// Unicode rule that Python's errors="replace" and Rust's from_utf8_lossy (used by Hugging Face
// tokenizers) both follow, so each subpart becomes exactly one U+FFFD as it does there.
struct Utf8Step {
  size_t length;  // bytes of the sequence, or of the invalid subpart (at least 1)
  bool valid;
  bool truncated;  // a valid prefix cut off by the end of the input
};

Utf8Step ScanUtf8(std::string_view s, size_t pos) {
  const auto lead = static_cast<uint8_t>(s[pos]);
  if (lead < 0x80) return {1, true, false};
  size_t continuation;
  uint8_t lo = 0x80, hi = 0xBF;  // range of the first continuation byte, narrower after some leads
  if (lead >= 0xC2 && lead <= 0xDF) {
    continuation = 1;
  } else if (lead == 0xE0) {
    continuation = 2, lo = 0xA0;
  } else if (lead == 0xED) {
    continuation = 2, hi = 0x9F;  // excludes surrogates
  } else if (lead >= 0xE1 && lead <= 0xEF) {
    continuation = 2;
  } else if (lead == 0xF0) {
    continuation = 3, lo = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    continuation = 3;
  } else if (lead == 0xF4) {
    continuation = 3, hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return {1, false, false};
  }
  size_t length = 1;
  for (; length <= continuation; ++length) {
    if (pos + length == s.size()) return {length, false, true};
    const auto byte = static_cast<uint8_t>(s[pos + length]);
    if (byte < lo || byte > hi) return {length, false, false};
    lo = 0x80, hi = 0xBF;
  }
  return {length, true, false};
}

// Appends `bytes` with each invalid subpart replaced by U+FFFD. With `hold_truncated`, stops
// before a trailing sequence that later bytes could still complete. Returns the bytes consumed.
size_t AppendReplacingInvalid(std::string_view bytes, std::string& out, bool hold_truncated) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const Utf8Step step = ScanUtf8(bytes, pos);
    if (step.truncated && hold_truncated) break;
    out += step.valid ? bytes.substr(pos, step.length) : std::string_view("\xEF\xBF\xBD");
    pos += step.length;
  }
  return pos;
}

std::optional<size_t> FirstInvalidUtf8(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Step step = ScanUtf8(text, pos);
    if (!step.valid) return pos;
    pos += step.length;
  }
  return std::nullopt;
}

std::string Nfc(std::string_view text) {
  utf8proc_uint8_t* normalized = nullptr;
  const utf8proc_ssize_t length =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                   &normalized, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (length < 0) throw Error(fmt::format("NFC normalization failed: {}", utf8proc_errmsg(length)));
  const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(normalized, &std::free);
  return std::string(reinterpret_cast<const char*>(normalized), static_cast<size_t>(length));
}

// --- byte-level alphabet --------------------------------------------------------------------

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other bytes for
// U+0100 onwards in byte order, so every byte is a visible character in the vocabulary.
std::array<std::string, 256> ByteLevelChars() {
  std::array<std::string, 256> chars;
  int32_t next_unprintable = 0x100;
  for (int byte = 0; byte < 256; ++byte) {
    const bool printable = (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) || byte >= 0xAE;
    std::array<utf8proc_uint8_t, 4> utf8{};
    const auto length = utf8proc_encode_char(printable ? byte : next_unprintable++, utf8.data());
    chars[byte].assign(reinterpret_cast<const char*>(utf8.data()), static_cast<size_t>(length));
  }
  return chars;
}

// A token's text mapped back to bytes. A token with a character outside the byte-level alphabet
// stands for its own UTF-8, as in Hugging Face's ByteLevel decoder.
std::string ByteLevelToBytes(const std::string& token, const std::unordered_map<int32_t, char>& byte_of_char) {
  std::string bytes;
  const auto* data = reinterpret_cast<const utf8proc_uint8_t*>(token.data());
  for (size_t pos = 0; pos < token.size();) {
    int32_t codepoint = 0;
    const auto length = utf8proc_iterate(data + pos, static_cast<utf8proc_ssize_t>(token.size() - pos), &codepoint);
    const auto it = byte_of_char.find(codepoint);
    if (length < 0 || it == byte_of_char.end()) return token;
    bytes += it->second;
    pos += static_cast<size_t>(length);
  }
  return bytes;
}

uint64_t PairKey(uint32_t left, uint32_t right) {
  return (static_cast<uint64_t>(left) << 32) | right;
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

}  // namespace

// --- Impl and validation --------------------------------------------------------------------

struct Tokenizer::Impl {
  struct Merge {
    uint32_t rank;
    uint32_t merged_id;
  };
  struct AddedToken {
    uint32_t id;
    std::string content;
  };

  std::vector<std::string> tokens;
  std::vector<std::string> token_bytes;  // what each id decodes to
  std::vector<bool> special;
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> id_of_token;
  std::unordered_map<uint64_t, Merge> merges;  // (left id, right id) -> rank and result
  std::array<uint32_t, 256> byte_ids{};
  std::vector<AddedToken> added_longest_first;
  std::array<bool, 256> added_first_byte{};
  std::shared_ptr<pcre2_code> split_regex;
  bool nfc = true;

  const AddedToken* LongestAddedAt(std::string_view text, size_t pos) const;
  void EncodeSegment(std::string_view segment, pcre2_match_data* match_data, std::vector<uint32_t>& ids,
                     EncodeStats& stats) const;
  void AppendBpe(std::string_view piece, std::vector<uint32_t>& ids, EncodeStats& stats) const;
};

Tokenizer::Tokenizer(TokenizerVocab vocab) {
  auto impl = std::make_shared<Impl>();
  const size_t count = vocab.tokens.size();
  if (count == 0 || count > UINT32_MAX) throw Error(fmt::format("tokenizer vocabulary has {} tokens", count));
  impl->id_of_token.reserve(count);
  for (uint32_t id = 0; id < count; ++id) {
    const auto [it, inserted] = impl->id_of_token.emplace(vocab.tokens[id], id);
    if (!inserted) {
      throw Error(
          fmt::format("token '{}' appears twice in the vocabulary (ids {} and {})", vocab.tokens[id], it->second, id));
    }
  }

  impl->special.assign(count, false);
  std::vector<bool> is_added(count, false);
  for (const TokenizerVocab::Added& added : vocab.added) {
    if (added.id >= count) {
      throw Error(
          fmt::format("added token '{}' has id {}, outside the vocabulary of {}", added.content, added.id, count));
    }
    if (added.content.empty()) throw Error(fmt::format("added token {} is empty", added.id));
    if (vocab.tokens[added.id] != added.content) {
      throw Error(fmt::format("added token '{}' has id {}, whose vocabulary entry is '{}'", added.content, added.id,
                              vocab.tokens[added.id]));
    }
    is_added[added.id] = true;
    impl->special[added.id] = added.special;
    impl->added_longest_first.push_back({added.id, added.content});
    impl->added_first_byte[static_cast<uint8_t>(added.content[0])] = true;
  }
  std::stable_sort(
      impl->added_longest_first.begin(), impl->added_longest_first.end(),
      [](const Impl::AddedToken& a, const Impl::AddedToken& b) { return a.content.size() > b.content.size(); });

  const std::array<std::string, 256> byte_chars = ByteLevelChars();
  std::unordered_map<int32_t, char> byte_of_char;
  for (int byte = 0; byte < 256; ++byte) {
    int32_t codepoint = 0;
    utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(byte_chars[byte].data()),
                     static_cast<utf8proc_ssize_t>(byte_chars[byte].size()), &codepoint);
    byte_of_char.emplace(codepoint, static_cast<char>(byte));
    const auto it = impl->id_of_token.find(byte_chars[byte]);
    if (it == impl->id_of_token.end()) {
      throw Error(
          fmt::format("the vocabulary lacks the byte-level token '{}' for byte 0x{:02X}", byte_chars[byte], byte));
    }
    impl->byte_ids[byte] = it->second;
  }
  impl->token_bytes.reserve(count);
  for (uint32_t id = 0; id < count; ++id) {
    impl->token_bytes.push_back(is_added[id] ? vocab.tokens[id] : ByteLevelToBytes(vocab.tokens[id], byte_of_char));
  }

  impl->merges.reserve(vocab.merges.size());
  for (uint32_t rank = 0; rank < vocab.merges.size(); ++rank) {
    // Named references, not structured bindings: lambdas may capture those only from C++20
    // compilers newer than clang 14, which builds the fuzzer.
    const std::string& left = vocab.merges[rank].first;
    const std::string& right = vocab.merges[rank].second;
    const auto id_of = [&](const std::string& token) {
      const auto it = impl->id_of_token.find(token);
      if (it == impl->id_of_token.end()) {
        throw Error(fmt::format("merge {} ('{}' '{}'): '{}' is not in the vocabulary", rank, left, right, token));
      }
      return it->second;
    };
    // A later duplicate replaces an earlier one, as in Hugging Face's BPE model.
    impl->merges.insert_or_assign(PairKey(id_of(left), id_of(right)), Impl::Merge{rank, id_of(left + right)});
  }

  if (vocab.pre_tokenizer_regex.empty()) throw Error("the pre-tokenizer regex is empty");
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* regex =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(vocab.pre_tokenizer_regex.data()), vocab.pre_tokenizer_regex.size(),
                    PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (regex == nullptr) {
    std::array<PCRE2_UCHAR, 256> message{};
    pcre2_get_error_message(error_code, message.data(), message.size());
    throw Error(fmt::format("pre-tokenizer regex does not compile at offset {}: {}", error_offset,
                            reinterpret_cast<const char*>(message.data())));
  }
  impl->split_regex.reset(regex, pcre2_code_free);
  // Without JIT support PCRE2 falls back to its interpreter, which is only slower.
  pcre2_jit_compile(regex, PCRE2_JIT_COMPLETE);

  impl->nfc = vocab.nfc;
  impl->tokens = std::move(vocab.tokens);
  impl_ = std::move(impl);
}

uint32_t Tokenizer::vocab_size() const {
  return static_cast<uint32_t>(impl_->tokens.size());
}

std::optional<uint32_t> Tokenizer::TokenId(std::string_view token_text) const {
  const auto it = impl_->id_of_token.find(token_text);
  if (it == impl_->id_of_token.end()) return std::nullopt;
  return it->second;
}

const std::string& Tokenizer::TokenText(uint32_t id) const {
  if (id >= vocab_size()) throw Error(fmt::format("token id {} is outside the vocabulary of {}", id, vocab_size()));
  return impl_->tokens[id];
}

bool Tokenizer::IsSpecial(uint32_t id) const {
  if (id >= vocab_size()) throw Error(fmt::format("token id {} is outside the vocabulary of {}", id, vocab_size()));
  return impl_->special[id];
}

// --- Encode ---------------------------------------------------------------------------------

const Tokenizer::Impl::AddedToken* Tokenizer::Impl::LongestAddedAt(std::string_view text, size_t pos) const {
  if (!added_first_byte[static_cast<uint8_t>(text[pos])]) return nullptr;
  for (const AddedToken& added : added_longest_first) {
    if (text.substr(pos).starts_with(added.content)) return &added;
  }
  return nullptr;
}

std::vector<uint32_t> Tokenizer::Encode(std::string_view text, EncodeStats* stats) const {
  EncodeStats unused;
  EncodeStats& work = stats != nullptr ? *stats : unused;
  if (const auto bad = FirstInvalidUtf8(text)) {
    throw Error(fmt::format("cannot tokenize: text is not valid UTF-8 at byte {}", *bad));
  }
  const std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match_data(
      pcre2_match_data_create_from_pattern(impl_->split_regex.get(), nullptr), &pcre2_match_data_free);
  std::vector<uint32_t> ids;
  size_t segment_start = 0;
  for (size_t pos = 0; pos < text.size();) {
    const Impl::AddedToken* added = impl_->LongestAddedAt(text, pos);
    if (added == nullptr) {
      ++pos;
      continue;
    }
    impl_->EncodeSegment(text.substr(segment_start, pos - segment_start), match_data.get(), ids, work);
    ids.push_back(added->id);
    pos += added->content.size();
    segment_start = pos;
  }
  impl_->EncodeSegment(text.substr(segment_start), match_data.get(), ids, work);
  return ids;
}

// The pre-tokenizer's Split with behaviour "Isolated": every match and every stretch between
// matches is a piece of its own.
void Tokenizer::Impl::EncodeSegment(std::string_view segment, pcre2_match_data* match_data, std::vector<uint32_t>& ids,
                                    EncodeStats& stats) const {
  if (segment.empty()) return;
  std::string normalized;
  if (nfc) {
    normalized = Nfc(segment);
    segment = normalized;
  }
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(segment.data());
  size_t offset = 0;
  while (offset < segment.size()) {
    // Validity was checked once in Encode (and NFC keeps it); matches end on character boundaries.
    const int rc = pcre2_match(split_regex.get(), subject, segment.size(), offset, PCRE2_NOTEMPTY | PCRE2_NO_UTF_CHECK,
                               match_data, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      std::array<PCRE2_UCHAR, 256> message{};
      pcre2_get_error_message(rc, message.data(), message.size());
      throw Error(fmt::format("pre-tokenizer regex failed: {}", reinterpret_cast<const char*>(message.data())));
    }
    const PCRE2_SIZE* match = pcre2_get_ovector_pointer(match_data);
    if (match[0] > offset) AppendBpe(segment.substr(offset, match[0] - offset), ids, stats);
    AppendBpe(segment.substr(match[0], match[1] - match[0]), ids, stats);
    offset = match[1];
  }
  if (offset < segment.size()) AppendBpe(segment.substr(offset), ids, stats);
}

// BPE over the piece's bytes: repeatedly merge the adjacent pair of lowest rank, the leftmost on
// ties, as Hugging Face's Word::merge_all does. A queue of candidate pairs keeps long pieces
// (long runs of spaces or letters) at O(n log n); entries made stale by earlier merges are
// recognised by their ids no longer matching.
void Tokenizer::Impl::AppendBpe(std::string_view piece, std::vector<uint32_t>& ids, EncodeStats& stats) const {
  constexpr uint32_t kNone = UINT32_MAX;
  struct Symbol {
    uint32_t id;  // kNone once merged into its left neighbour
    uint32_t prev;
    uint32_t next;
  };
  struct Candidate {
    uint32_t rank, left, left_id, right_id, merged_id;
    bool operator>(const Candidate& other) const { return std::tie(rank, left) > std::tie(other.rank, other.left); }
  };
  const auto size = static_cast<uint32_t>(piece.size());
  std::vector<Symbol> symbols(size);
  for (uint32_t i = 0; i < size; ++i) {
    symbols[i] = {byte_ids[static_cast<uint8_t>(piece[i])], i == 0 ? kNone : i - 1, i + 1 == size ? kNone : i + 1};
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto consider = [&](uint32_t left) {
    const uint32_t right = symbols[left].next;
    if (right == kNone) return;
    ++stats.bpe_steps;
    const auto it = merges.find(PairKey(symbols[left].id, symbols[right].id));
    if (it != merges.end()) {
      queue.push({it->second.rank, left, symbols[left].id, symbols[right].id, it->second.merged_id});
    }
  };
  for (uint32_t i = 0; i + 1 < size; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate candidate = queue.top();
    queue.pop();
    ++stats.bpe_steps;
    Symbol& left = symbols[candidate.left];
    if (left.id != candidate.left_id || left.next == kNone || symbols[left.next].id != candidate.right_id) continue;
    Symbol& right = symbols[left.next];
    left.id = candidate.merged_id;
    left.next = right.next;
    if (right.next != kNone) symbols[right.next].prev = candidate.left;
    right.id = kNone;
    if (left.prev != kNone) consider(left.prev);
    consider(candidate.left);
  }
  for (uint32_t i = 0; i != kNone; i = symbols[i].next) ids.push_back(symbols[i].id);
}

// --- Decode and StreamDecoder ---------------------------------------------------------------

std::string_view Tokenizer::TokenBytes(uint32_t id, bool skip_special) const {
  if (id >= vocab_size()) {
    throw Error(fmt::format("cannot decode token id {}: the vocabulary has {} tokens", id, vocab_size()));
  }
  if (skip_special && impl_->special[id]) return {};
  return impl_->token_bytes[id];
}

std::string Tokenizer::Decode(std::span<const uint32_t> ids, bool skip_special) const {
  std::string bytes;
  for (const uint32_t id : ids) bytes += TokenBytes(id, skip_special);
  std::string text;
  AppendReplacingInvalid(bytes, text, /*hold_truncated=*/false);
  return text;
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(&tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::Push(uint32_t id) {
  // Models pad their embedding past the tokenizer's vocabulary (Qwen2: 151936 rows, 151665
  // tokens); a sampled padding id has no text, and transformers decodes it to nothing too.
  if (id >= tokenizer_->vocab_size()) return {};
  pending_ += tokenizer_->TokenBytes(id, skip_special_);
  std::string text;
  pending_.erase(0, AppendReplacingInvalid(pending_, text, /*hold_truncated=*/true));
  return text;
}

std::string StreamDecoder::Flush() {
  std::string text;
  AppendReplacingInvalid(pending_, text, /*hold_truncated=*/false);
  pending_.clear();
  return text;
}

// --- tokenizer.json -------------------------------------------------------------------------
namespace {

using nlohmann::json;

const json& Member(const json& object, const char* key, std::string_view where) {
  if (!object.is_object()) throw Error(fmt::format("{} is not an object", where));
  const auto it = object.find(key);
  if (it == object.end()) throw Error(fmt::format("{}.{} is missing", where, key));
  return *it;
}

// Options of the BPE model that change tokenization and that Qwen2 leaves off.
void RejectUnsupportedModelOptions(const json& model) {
  const auto is_set = [&](const char* key) {
    const auto it = model.find(key);
    if (it == model.end() || it->is_null()) return false;
    return it->is_boolean() ? it->get<bool>() : !(it->is_string() && it->get<std::string>().empty());
  };
  for (const char* key :
       {"dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "byte_fallback", "ignore_merges"}) {
    if (is_set(key)) throw Error(fmt::format("model.{} = {} is not supported", key, BriefJson(model.at(key))));
  }
}

bool ReadNormalizer(const json& normalizer) {
  if (normalizer.is_null()) return false;
  const std::string type = Member(normalizer, "type", "normalizer").get<std::string>();
  if (type == "NFC") return true;
  if (type == "Sequence") {
    const json& steps = Member(normalizer, "normalizers", "normalizer");
    if (steps.empty()) return false;
    if (steps.size() == 1) return ReadNormalizer(steps[0]);
  }
  throw Error(fmt::format("normalizer {} is not supported (only NFC)", BriefJson(normalizer)));
}

// Qwen2's pre-tokenizer: a regex Split (Isolated) then ByteLevel without its own GPT-2 regex.
std::string ReadSplitRegex(const json& pre_tokenizer) {
  const json steps = Member(pre_tokenizer, "type", "pre_tokenizer") == "Sequence"
                         ? Member(pre_tokenizer, "pretokenizers", "pre_tokenizer")
                         : json::array({pre_tokenizer});
  std::string regex;
  bool byte_level = false;
  for (const json& step : steps) {
    const std::string type = Member(step, "type", "pre_tokenizer step").get<std::string>();
    if (type == "Split" && regex.empty() && Member(step, "behavior", "Split") == "Isolated" &&
        !step.value("invert", false) && Member(step, "pattern", "Split").contains("Regex")) {
      regex = step["pattern"]["Regex"].get<std::string>();
    } else if (type == "ByteLevel" && !byte_level && !step.value("use_regex", true) &&
               !step.value("add_prefix_space", true)) {
      byte_level = true;
    } else {
      throw Error(fmt::format("pre_tokenizer step {} is not supported", BriefJson(step)));
    }
  }
  if (regex.empty() || !byte_level) {
    throw Error("pre_tokenizer must be a regex Split (Isolated) and a ByteLevel step without use_regex");
  }
  return regex;
}

TokenizerVocab ReadVocab(const json& doc, std::optional<uint32_t> declared_vocab_size) {
  const json& model = Member(doc, "model", "tokenizer.json");
  if (const std::string type = model.value("type", "BPE"); type != "BPE") {
    throw Error(fmt::format("model.type is '{}'; only BPE is supported", type));
  }
  RejectUnsupportedModelOptions(model);
  TokenizerVocab vocab;

  const json& model_vocab = Member(model, "vocab", "model");
  if (!model_vocab.is_object()) throw Error("model.vocab is not an object");
  const auto added_tokens = doc.find("added_tokens");
  const bool has_added = added_tokens != doc.end() && !added_tokens->is_null();
  if (has_added && !added_tokens->is_array()) throw Error("added_tokens is not an array");

  // Ids run 0..n-1 without gaps, so none can reach the number of entries; checking that first
  // keeps a hostile id from sizing the table below.
  uint64_t id_limit = model_vocab.size() + (has_added ? added_tokens->size() : 0);
  const char* id_limit_source = "the number of tokens listed";
  if (input_limits::kMaxVocab < id_limit) {
    id_limit = input_limits::kMaxVocab;
    id_limit_source = "the largest vocabulary accepted";
  }
  if (declared_vocab_size && *declared_vocab_size < id_limit) {
    id_limit = *declared_vocab_size;
    id_limit_source = "config.json's vocab_size";
  }
  std::vector<std::optional<std::string>> by_id;
  const auto place = [&](const json& id_value, const std::string& text) {
    if (!id_value.is_number_unsigned() || id_value.get<uint64_t>() >= id_limit) {
      throw Error(fmt::format("token '{}' has id {}, not an integer below {} ({})", text, BriefJson(id_value), id_limit,
                              id_limit_source));
    }
    const auto id = id_value.get<uint32_t>();
    if (id >= by_id.size()) by_id.resize(static_cast<size_t>(id) + 1);
    if (by_id[id] && *by_id[id] != text) {
      throw Error(fmt::format("id {} is given to both '{}' and '{}'", id, *by_id[id], text));
    }
    by_id[id] = text;
  };
  for (const auto& [text, id] : model_vocab.items()) place(id, text);
  if (has_added) {
    for (const json& added : *added_tokens) {
      const json& id = Member(added, "id", "added token");
      const std::string content = Member(added, "content", "added token").get<std::string>();
      place(id, content);
      vocab.added.push_back({id.get<uint32_t>(), content, added.value("special", false)});
    }
  }
  for (uint32_t id = 0; id < by_id.size(); ++id) {
    if (!by_id[id]) throw Error(fmt::format("no token has id {} (ids run to {})", id, by_id.size() - 1));
    vocab.tokens.push_back(std::move(*by_id[id]));
  }

  const json& merges = Member(model, "merges", "model");
  if (!merges.is_array()) throw Error("model.merges is not an array");
  vocab.merges.reserve(merges.size());
  for (const json& merge : merges) {
    // Older files write a merge as "left right", newer ones as ["left", "right"].
    if (merge.is_array() && merge.size() == 2) {
      vocab.merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
    } else if (const std::string text = merge.is_string() ? merge.get<std::string>() : "";
               text.find(' ') != std::string::npos && text.find(' ') == text.rfind(' ')) {
      vocab.merges.emplace_back(text.substr(0, text.find(' ')), text.substr(text.find(' ') + 1));
    } else {
      throw Error(fmt::format("model.merges[{}] = {} is not a pair", vocab.merges.size(), BriefJson(merge)));
    }
  }

  const auto normalizer = doc.find("normalizer");
  vocab.nfc = normalizer != doc.end() && ReadNormalizer(*normalizer);
  vocab.pre_tokenizer_regex = ReadSplitRegex(Member(doc, "pre_tokenizer", "tokenizer.json"));
  return vocab;
}

}  // namespace

Tokenizer Tokenizer::FromTokenizerJson(const std::filesystem::path& path, std::optional<uint32_t> declared_vocab_size) {
  const json doc = ReadJsonFile(path, {input_limits::kMaxTokenizerJsonBytes, input_limits::kMaxJsonDepth});
  try {
    return Tokenizer(ReadVocab(doc, declared_vocab_size));
  } catch (const json::exception& e) {
    throw Error(fmt::format("{} is not a valid tokenizer.json: {}", path.string(), e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("{} is not a valid tokenizer.json: {}", path.string(), e.what()));
  }
}

}  // namespace qvk
