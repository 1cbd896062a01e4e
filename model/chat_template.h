#pragma once
// Chat templates: an interpreter for the Jinja subset that Qwen1.5, Qwen2 and Qwen2.5 (without
// tools) templates use, rendering as transformers' apply_chat_template does (Jinja with
// trim_blocks and lstrip_blocks). Anything outside the subset is rejected when the template is
// parsed, so a template either renders as transformers would or does not load. A template comes
// with the model's files, so its size, nesting and what one rendering may spend are bounded
// (model/input_limits.h); past a bound is an Error naming it.
#include <filesystem>
#include <memory>
#include <span>
#include <string>

namespace qvk {

struct ChatMessage {
  std::string role;
  std::string content;
};

class ChatTemplate {
 public:
  explicit ChatTemplate(std::string jinja_source);  // throws qvk::Error naming unsupported syntax
  // Its "chat_template": a string, or a list of {name, template} of which "default" is taken. The
  // file's bos_token and eos_token are given to the template too.
  static ChatTemplate FromTokenizerConfig(const std::filesystem::path& path);

  // Variables: messages, add_generation_prompt, bos_token, eos_token, and tools (none). Throws
  // qvk::Error for a runtime error in the template or when it exceeds its rendering budget.
  std::string Apply(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  const std::string& source() const { return source_; }

 private:
  struct Program;

  std::string source_;
  std::shared_ptr<const Program> program_;
  std::string bos_token_;
  std::string eos_token_;
};

}  // namespace qvk
