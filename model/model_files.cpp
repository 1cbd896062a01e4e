#include "model/model_files.h"

#include <algorithm>

#include <fmt/format.h>

#include "gpu/error.h"

namespace qvk {

ModelFiles::ModelFiles(const std::filesystem::path& folder) : folder_(folder) {
  if (!std::filesystem::is_directory(folder)) {
    throw Error(fmt::format("{} is not a model folder (expected config.json, tokenizer.json and safetensors files)",
                            folder.string()));
  }
  config_ = ModelConfig::FromJsonFile(folder / "config.json");
  generation_ = GenerationConfig::FromJsonFile(folder / "generation_config.json");
  tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::FromTokenizerJson(folder / "tokenizer.json"));
  if (std::filesystem::exists(folder / "tokenizer_config.json")) {
    chat_template_ = ChatTemplate::FromTokenizerConfig(folder / "tokenizer_config.json");
  }
  tensors_ = std::make_unique<SafetensorsModel>(folder);
  ValidateQwen2Tensors(config_, *tensors_);
  if (tokenizer_->vocab_size() > config_.vocab_size) {
    throw Error(
        fmt::format("tokenizer has {} tokens but the model only {}", tokenizer_->vocab_size(), config_.vocab_size));
  }

  stop_ids_ = config_.eos_token_ids;
  stop_ids_.insert(stop_ids_.end(), generation_.eos_token_ids.begin(), generation_.eos_token_ids.end());
  if (auto im_end = tokenizer_->TokenId("<|im_end|>")) stop_ids_.push_back(*im_end);
}

std::vector<uint32_t> ModelFiles::EncodeChat(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  if (!chat_template_) throw Error(fmt::format("{} has no chat template", folder_.string()));
  return tokenizer_->Encode(chat_template_->Apply(messages, add_generation_prompt));
}

bool ModelFiles::IsStopToken(uint32_t id) const {
  return std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end();
}

}  // namespace qvk
