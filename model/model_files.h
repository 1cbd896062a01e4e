#pragma once
// A model, parsed and validated without touching the GPU: a Hugging Face folder (config,
// generation defaults, tokenizer.json, chat template, mmapped safetensors) or one GGUF file
// (all of that in its metadata, the tensors mmapped).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/chat_template.h"
#include "model/config.h"
#include "model/tokenizer.h"
#include "model/weight_source.h"

namespace qvk {

class GgufFile;
class SafetensorsModel;

class ModelFiles {
 public:
  // A folder is read as Hugging Face, a file as GGUF. Throws Error naming the file and what is
  // wrong with it.
  explicit ModelFiles(const std::filesystem::path& path);
  ~ModelFiles();

  const std::filesystem::path& path() const { return path_; }
  bool is_gguf() const { return gguf_ != nullptr; }
  const ModelConfig& config() const { return config_; }
  const GenerationConfig& generation() const { return generation_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const WeightSource& weights() const { return *source_; }
  const GgufFile* gguf() const { return gguf_.get(); }
  bool has_chat_template() const { return chat_template_.has_value(); }
  const std::string& tokenizer_source() const { return tokenizer_source_; }
  const std::string& template_source() const { return template_source_; }
  // Why the model's chat template cannot be used (a construct the template engine lacks), or
  // empty. Such a model still loads for plain text; EncodeChat throws this reason.
  const std::string& template_error() const { return template_error_; }

  // Whether the chat template reads enable_thinking (Qwen3's does): a thinking switch means
  // something to this model.
  bool has_thinking_switch() const { return thinking_default_.has_value(); }
  // With a thinking switch, whether the template thinks when the switch is left unset (Qwen3's
  // does): found at load by rendering a prompt both ways.
  std::optional<bool> thinking_default() const { return thinking_default_; }
  // The chat template applied to `messages`, tokenized.
  std::vector<uint32_t> EncodeChat(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                   const TemplateOptions& options = {}) const;
  // The template applied without a generation prompt and cut right after the last message's
  // content, so the model carries on writing that message (transformers' continue_final_message).
  // Throws Error when the last message is empty or the template does not render its content.
  std::vector<uint32_t> EncodeChatContinuation(std::span<const ChatMessage> messages,
                                               const TemplateOptions& options = {}) const;
  // <|im_end|> and every end-of-sequence id of the config and generation config.
  bool IsStopToken(uint32_t id) const;

 private:
  void OpenFolder();
  void OpenGguf();
  void LoadTemplate(const std::function<ChatTemplate()>& load);
  void RequireTemplate() const;  // throws Error saying why there is no usable template

  std::filesystem::path path_;
  ModelConfig config_;
  GenerationConfig generation_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::optional<ChatTemplate> chat_template_;
  std::unique_ptr<SafetensorsModel> tensors_;
  std::unique_ptr<GgufFile> gguf_;
  std::unique_ptr<WeightSource> source_;
  std::vector<uint32_t> stop_ids_;
  std::string tokenizer_source_, template_source_, template_error_;
  std::optional<bool> thinking_default_;
};

}  // namespace qvk
