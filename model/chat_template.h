#pragma once
// Chat templates: an interpreter for the Jinja subset that Qwen1.5, Qwen2, Qwen2.5 and Qwen3
// templates use (tools and thinking included), rendering as transformers' apply_chat_template
// does (Jinja with trim_blocks and lstrip_blocks, transformers' tojson). Anything outside the
// subset is rejected when the template is parsed, so a template either renders as transformers
// would or does not load. A template comes with the model's files, so its size, nesting and what
// one rendering may spend are bounded (model/input_limits.h); past a bound is an Error naming it.
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace qvk {

struct ChatMessage {
  std::string role;
  std::string content;
};

// Template variables a caller sets besides the messages (apply_chat_template's keyword arguments).
struct TemplateOptions {
  // Qwen3's switch: false asks for a reply without thinking (its generation prompt then ends with
  // an empty <think></think> block). Unset, the variable stays undefined: the template's default.
  std::optional<bool> enable_thinking;
  bool operator==(const TemplateOptions&) const = default;
};

class ChatTemplate {
 public:
  explicit ChatTemplate(std::string jinja_source);  // throws qvk::Error naming unsupported syntax
  // Its "chat_template": a string, or a list of {name, template} of which "default" is taken. The
  // file's bos_token and eos_token are given to the template too.
  static ChatTemplate FromTokenizerConfig(const std::filesystem::path& path);

  // Variables: messages ({role, content} each), add_generation_prompt, bos_token, eos_token,
  // tools and documents (none), and `options`. Throws qvk::Error for a runtime error in the
  // template or when it exceeds its rendering budget.
  std::string Apply(std::span<const ChatMessage> messages, bool add_generation_prompt,
                    const TemplateOptions& options = {}) const;
  // The general form, as transformers takes a conversation: `messages` a JSON list of message
  // objects with any fields (tool_calls, reasoning_content, content null or a list of parts), and
  // `variables` an object (or null) of further variables, such as tools or enable_thinking.
  std::string ApplyJson(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                        const nlohmann::ordered_json& variables) const;
  // Whether the template reads the variable `name` anywhere (enable_thinking: whether a thinking
  // switch means anything to this model).
  bool ReadsVariable(std::string_view name) const;
  const std::string& source() const { return source_; }

 private:
  struct Program;

  std::string source_;
  std::shared_ptr<const Program> program_;
  std::string bos_token_;
  std::string eos_token_;
};

}  // namespace qvk
