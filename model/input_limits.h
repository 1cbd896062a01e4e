#pragma once
// Every limit that the parsers of a model's files hold their input to, in one place. A model
// folder or a GGUF file may come from anyone, so each parser of one (config.json,
// generation_config.json, tokenizer.json, tokenizer_config.json and its chat template,
// model.safetensors.index.json, safetensors headers, GGUF) refuses input past these limits with an
// Error naming the file and the limit. Each limit sits far above what any released Qwen2-family
// file needs and far below what would overflow the stack, exhaust memory or run for minutes.
#include <cstddef>
#include <cstdint>

namespace qvk::input_limits {

// --- JSON files -----------------------------------------------------------------------------

// Objects and arrays inside one another. Real files nest 5 levels at most (tokenizer.json's
// pre_tokenizer.pretokenizers[i].pattern); nlohmann's dump(), copies and comparisons recurse once
// per level.
inline constexpr int kMaxJsonDepth = 64;
// config.json and generation_config.json: a few KB in every release.
inline constexpr uint64_t kMaxConfigJsonBytes = uint64_t{1} << 20;
// tokenizer.json: Qwen2's (151k tokens, 151k merges) is 5 to 7 MB.
inline constexpr uint64_t kMaxTokenizerJsonBytes = uint64_t{64} << 20;
// tokenizer_config.json: a few KB, the chat template included.
inline constexpr uint64_t kMaxTokenizerConfigJsonBytes = uint64_t{16} << 20;
// model.safetensors.index.json: a line per tensor, under 100 KB for Qwen2-72B's 963 tensors.
inline constexpr uint64_t kMaxSafetensorsIndexBytes = uint64_t{16} << 20;
// A safetensors file's JSON header: a few hundred KiB even for 72B shards.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = uint64_t{100} << 20;

// --- model configuration (config.json and GGUF metadata) ------------------------------------

// Far above any released Qwen2 (72B: hidden 8192, 80 layers, 64 heads, intermediate 29568,
// vocab 152064), they stop garbage such as a byte-swapped number before it sizes an allocation.
inline constexpr uint32_t kMaxHidden = 1u << 16;
inline constexpr uint32_t kMaxIntermediate = 1u << 20;
inline constexpr uint32_t kMaxLayers = 1024;
inline constexpr uint32_t kMaxHeads = 1024;
inline constexpr uint32_t kMaxHeadDim = 1024;
// Qwen3-30B-A3B routes each token to 8 of 128 experts; the router kernel keeps a token's choice
// in registers, so experts per token stay small.
inline constexpr uint32_t kMaxExperts = 1024;
inline constexpr uint32_t kMaxExpertsPerToken = 32;
// Also the largest tokenizer: a token id in tokenizer.json must be below this, below config.json's
// vocab_size, and below the number of tokens the file lists (ids run 0..n-1 without gaps).
inline constexpr uint32_t kMaxVocab = 1u << 24;
inline constexpr uint32_t kMaxPositions = 1u << 24;

// --- GGUF -----------------------------------------------------------------------------------

// Every count and length in a GGUF file is checked against the bytes left to hold it; nesting is
// the one thing size does not bound. No writer nests metadata arrays at all.
inline constexpr int kMaxGgufArrayDepth = 4;

// --- chat templates -------------------------------------------------------------------------

// The template's source: the test model's (Qwen2.5's, without tools) is 573 bytes; templates
// with tool calling are a few KB.
inline constexpr size_t kMaxTemplateBytes = size_t{1} << 20;
// {% if %} and {% for %} inside one another; parsing and rendering recurse once per level.
inline constexpr int kMaxTemplateBlockDepth = 64;
// Depth of one expression's tree: parentheses, `not`, and chains of + [] . | that build left-deep
// trees. Parsing, evaluation and destruction recurse once per level. The classic Qwen
// template's longest chain is five +.
inline constexpr int kMaxTemplateExpressionDepth = 256;
// Statements run, loop iterations and expressions evaluated in one rendering. The test model's
// template takes about 30 per message, so this is over 30k messages.
inline constexpr uint64_t kMaxRenderSteps = uint64_t{1} << 20;
// The rendered prompt, and the bytes of strings and lists that one rendering may create: a fixed
// allowance plus a multiple of the messages' own bytes (a template copies each message a few
// times; one that doubles a string in a loop is stopped here).
inline constexpr uint64_t kRenderOutputBaseBytes = uint64_t{16} << 20;
inline constexpr uint64_t kRenderOutputPerMessageByte = 4;
inline constexpr uint64_t kRenderMemoryBaseBytes = uint64_t{64} << 20;
inline constexpr uint64_t kRenderMemoryPerMessageByte = 16;
// Bytes copied, compared and searched in one rendering: a step over a long string costs time in
// proportion to its length, so steps alone do not bound the time. A chat template touches each
// message's bytes a few times (the test model's renders a 50 MB message within these budgets).
inline constexpr uint64_t kRenderWorkBaseBytes = uint64_t{256} << 20;
inline constexpr uint64_t kRenderWorkPerMessageByte = 64;

}  // namespace qvk::input_limits
