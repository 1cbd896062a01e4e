#include "model/model_files.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/error.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/safetensors.h"

namespace qvk {

ModelFiles::ModelFiles(const std::filesystem::path& path) : path_(path) {
  if (std::filesystem::is_directory(path)) {
    OpenFolder();
  } else if (std::filesystem::is_regular_file(path)) {
    OpenGguf();
  } else if (!std::filesystem::exists(path)) {
    throw Error(fmt::format("{}: no such file or folder", path.string()));
  } else {
    throw Error(fmt::format("{} is neither a model folder (config.json, tokenizer.json, safetensors) nor a .gguf file",
                            path.string()));
  }
  ValidateQwen2Tensors(config_, *source_);
  if (tokenizer_->vocab_size() > config_.vocab_size) {
    throw Error(fmt::format("{}: the tokenizer has {} tokens but the model only {}", path.string(),
                            tokenizer_->vocab_size(), config_.vocab_size));
  }
  stop_ids_ = config_.eos_token_ids;
  stop_ids_.insert(stop_ids_.end(), generation_.eos_token_ids.begin(), generation_.eos_token_ids.end());
  if (auto im_end = tokenizer_->TokenId("<|im_end|>")) stop_ids_.push_back(*im_end);
}

ModelFiles::~ModelFiles() = default;

void ModelFiles::OpenFolder() {
  config_ = ModelConfig::FromJsonFile(path_ / "config.json");
  generation_ = GenerationConfig::FromJsonFile(path_ / "generation_config.json");
  tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::FromTokenizerJson(path_ / "tokenizer.json", config_.vocab_size));
  tokenizer_source_ = "tokenizer.json";
  if (std::filesystem::exists(path_ / "tokenizer_config.json")) {
    template_source_ = "tokenizer_config.json";
    LoadTemplate([&] { return ChatTemplate::FromTokenizerConfig(path_ / "tokenizer_config.json"); });
  }
  tensors_ = std::make_unique<SafetensorsModel>(path_);
  source_ = SafetensorsSource(*tensors_, path_);
}

void ModelFiles::OpenGguf() {
  gguf_ = std::make_unique<GgufFile>(GgufFile::Open(path_));
  config_ = ConfigFromGguf(*gguf_);
  // GGUF carries no sampling defaults: greedy, with the model's own end-of-sequence ids.
  generation_.eos_token_ids = config_.eos_token_ids;
  tokenizer_ = std::make_unique<Tokenizer>(TokenizerVocabFromGguf(*gguf_));
  tokenizer_source_ = "GGUF metadata (tokenizer.ggml.*)";
  if (auto source = ChatTemplateFromGguf(*gguf_)) {
    template_source_ = "GGUF metadata (tokenizer.chat_template)";
    LoadTemplate([&] { return ChatTemplate(*source); });
  }
  source_ = GgufSource(*gguf_, path_);
}

void ModelFiles::LoadTemplate(const std::function<ChatTemplate()>& load) {
  try {
    chat_template_.emplace(load());
  } catch (const Error& e) {
    template_error_ = e.what();
    return;
  }
  if (!chat_template_->ReadsVariable("enable_thinking")) return;
  // Unset, the switch is whatever the template makes of it: the prompt unset renders as one of
  // the two set ones. A template that fails here fails every chat anyway, and says why there.
  try {
    const std::vector<ChatMessage> probe = {{"user", "Hi"}};
    const std::string unset = chat_template_->Apply(probe, true);
    thinking_default_ = unset == chat_template_->Apply(probe, true, {.enable_thinking = true});
  } catch (const Error&) {
  }
}

void ModelFiles::RequireTemplate() const {
  if (chat_template_) return;
  if (!template_error_.empty()) {
    throw Error(fmt::format("the chat template of {} ({}) cannot be used: {}", path_.string(), template_source_,
                            template_error_));
  }
  throw Error(fmt::format("{} has no chat template", path_.string()));
}

std::vector<uint32_t> ModelFiles::EncodeChat(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                             const TemplateOptions& options) const {
  RequireTemplate();
  return tokenizer_->Encode(chat_template_->Apply(messages, add_generation_prompt, options));
}

std::vector<uint32_t> ModelFiles::EncodeChatContinuation(std::span<const ChatMessage> messages,
                                                         const TemplateOptions& options) const {
  RequireTemplate();
  if (messages.empty()) throw Error("there is no message to continue");
  const std::string& content = messages.back().content;
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const size_t first = content.find_first_not_of(kSpace);
  if (first == std::string::npos) throw Error("the message to continue is empty");
  const std::string_view lstripped = std::string_view(content).substr(first);
  const std::string_view stripped = lstripped.substr(0, lstripped.find_last_not_of(kSpace) + 1);
  const std::string rendered = chat_template_->Apply(messages, /*add_generation_prompt=*/false, options);
  // As transformers: find the stripped content, and keep its trailing whitespace only where the
  // template kept it too.
  const size_t at = rendered.rfind(stripped);
  if (at == std::string::npos) {
    throw Error(fmt::format("the chat template of {} does not render the message to continue", path_.string()));
  }
  const bool whole = std::string_view(rendered).substr(at, lstripped.size()) == content;
  return tokenizer_->Encode(rendered.substr(0, at + (whole ? lstripped.size() : stripped.size())));
}

bool ModelFiles::IsStopToken(uint32_t id) const {
  return std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end();
}

}  // namespace qvk
