#pragma once
// A Qwen2 model's config, tokenizer vocabulary and chat template from GGUF metadata, as llama.cpp's
// convert_hf_to_gguf.py writes them, held to the same bounds as config.json and tokenizer.json.
#include <optional>
#include <string>
#include <string_view>

#include "model/config.h"
#include "model/gguf.h"
#include "model/tokenizer.h"

namespace qvk {

// The Split regex of Qwen2's tokenizer.json pre-tokenizer, which GGUF names "qwen2".
inline constexpr std::string_view kQwen2PreTokenizerRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// general.architecture must be qwen2. The vocabulary size is the token embedding's row count,
// embeddings are tied when there is no output.weight, and no layer slides. Throws Error naming
// the file and the key.
ModelConfig ConfigFromGguf(const GgufFile& file);

// tokenizer.ggml.*: a gpt2 (byte-level BPE) model with the qwen2 pre-tokenizer. Control tokens
// become special added tokens and user-defined ones non-special added tokens; the unused padding
// tokens at the end of the vocabulary are left out, as they are absent from tokenizer.json.
TokenizerVocab TokenizerVocabFromGguf(const GgufFile& file);

std::optional<std::string> ChatTemplateFromGguf(const GgufFile& file);  // tokenizer.chat_template

}  // namespace qvk
