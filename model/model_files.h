#pragma once
// A Hugging Face model folder, parsed and validated without touching the GPU: config,
// generation defaults, tokenizer, chat template and the (mmapped) tensors.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/chat_template.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"

namespace qvk {

class ModelFiles {
 public:
  // Throws Error naming the file and what is wrong with it.
  explicit ModelFiles(const std::filesystem::path& folder);

  const std::filesystem::path& folder() const { return folder_; }
  const ModelConfig& config() const { return config_; }
  const GenerationConfig& generation() const { return generation_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const SafetensorsModel& tensors() const { return *tensors_; }
  bool has_chat_template() const { return chat_template_.has_value(); }

  // The chat template applied to `messages`, tokenized.
  std::vector<uint32_t> EncodeChat(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  // <|im_end|> and every end-of-sequence id of the config and generation config.
  bool IsStopToken(uint32_t id) const;

 private:
  std::filesystem::path folder_;
  ModelConfig config_;
  GenerationConfig generation_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::optional<ChatTemplate> chat_template_;
  std::unique_ptr<SafetensorsModel> tensors_;
  std::vector<uint32_t> stop_ids_;
};

}  // namespace qvk
