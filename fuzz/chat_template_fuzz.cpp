// libFuzzer target: the input as a chat template's source, parsed, then rendered over a small
// fixed conversation with and without the generation prompt and with thinking off, and over a
// conversation with tools and tool calls; and as a whole tokenizer_config.json. Every input must
// end in a rendered prompt or a qvk::Error; a crash, a sanitizer report, a hang or an allocation
// past libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_util.h"
#include "model/chat_template.h"

namespace {

const std::vector<qvk::ChatMessage> kMessages = {
    {"system", "You are a helpful assistant."},
    {"user", "Hi! \xE4\xBD\xA0\xE5\xA5\xBD"},
    {"assistant", "<think>\nA greeting.\n</think>\n\n  Hello.\n"},
    {"user", ""},
};

const nlohmann::ordered_json kToolMessages = nlohmann::ordered_json::parse(R"([
  {"role": "user", "content": "Weather in Paris?"},
  {"role": "assistant", "content": null, "reasoning_content": "Call the tool.",
   "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
  {"role": "tool", "content": "{\"temp\": 21.5}"}])");
const nlohmann::ordered_json kToolVariables = nlohmann::ordered_json::parse(R"({"enable_thinking": true, "tools": [
  {"type": "function", "function": {"name": "get_weather", "description": "Weather \"now\" <b>",
   "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "scale": {"default": 1e-05}}}}}]})");

void Render(const qvk::ChatTemplate& chat_template) {
  chat_template.Apply(kMessages, /*add_generation_prompt=*/true);
  chat_template.Apply(kMessages, /*add_generation_prompt=*/false);
  chat_template.Apply(kMessages, /*add_generation_prompt=*/true, {.enable_thinking = false});
  chat_template.ApplyJson(kToolMessages, /*add_generation_prompt=*/true, kToolVariables);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qvk::fuzz::AllowError([&] { Render(qvk::ChatTemplate(std::string(reinterpret_cast<const char*>(data), size))); });
  const auto config = qvk::fuzz::WriteFile("tokenizer_config.json", data, size);
  qvk::fuzz::AllowError([&] { Render(qvk::ChatTemplate::FromTokenizerConfig(config)); });
  return 0;
}
