// qwenvk: the program. Without a subcommand it is the desktop app; the terminal subcommands are
// wired here too; each lives in its own file.
#include <cstdio>
#include <optional>

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "app/commands.h"
#include "base/error.h"
#include "gpu/instance.h"

namespace {

void AddModelOptions(CLI::App* command, qvk::app::ModelOptions& options) {
  command->add_option("--model", options.model, "Hugging Face model folder or .gguf file")->required();
  command->add_option("--quant", options.quant, "Quantize float weights while loading: q8_0 or q4_0");
  command->add_option("--device", options.device, "Vulkan device number (see `qwenvk devices`); also QWENVK_DEVICE");
  command->add_option("--gpu-mem", options.gpu_mem_mib, "GPU memory budget in MiB (default: what the device has)");
  command->add_option("--context", options.context, "Context length in tokens (default min(32768, the model's))");
}

void AddSamplingOptions(CLI::App* command, qvk::app::GenerateOptions& options) {
  command->add_option("--temperature", options.temperature, "Sampling temperature (0: greedy)");
  command->add_option("--top-k", options.top_k, "Keep the k most likely tokens (0: off)");
  command->add_option("--top-p", options.top_p, "Keep the smallest set of tokens with this probability mass");
  command->add_option("--min-p", options.min_p, "Drop tokens below this fraction of the top probability");
  command->add_option("--repeat-penalty", options.repeat_penalty, "Repetition penalty (1: off)");
  command->add_option("--seed", options.seed, "Random seed for reproducible sampling");
  command->add_option("--max-tokens", options.max_tokens, "Most tokens to generate per reply");
  command->add_flag("--greedy", options.greedy, "Always take the most likely token");
}

}  // namespace

int main(int argc, char** argv) {
  // Logs go to stderr so stdout stays machine-readable; SPDLOG_LEVEL=debug for more.
  spdlog::set_default_logger(spdlog::stderr_color_mt("qwenvk"));
  spdlog::set_pattern("[%l] %v");
  spdlog::cfg::load_env_levels();

  CLI::App app{"QwenVK: Qwen2-family language models on any GPU through Vulkan compute"};
  // Without a subcommand: the desktop app.
  app.require_subcommand(0, 1);
  qvk::app::DesktopOptions desktop_options;
  app.add_option("--model", desktop_options.model, "Hugging Face model folder or .gguf file to chat with");
  app.add_option("--db", desktop_options.database,
                 "Conversation database (default $XDG_DATA_HOME/qwenvk/conversations.db)");
  app.add_option("--script", desktop_options.script, "Drive the app from a file of UI actions (tests, demos)");
  app.add_option("--device", desktop_options.device, "Vulkan device number for this run (see `qwenvk devices`)");

  qvk::app::DevicesOptions devices_options;
  std::optional<unsigned> devices_device;
  CLI::App* devices = app.add_subcommand("devices", "List every Vulkan device, what it supports, and which is chosen");
  devices->add_flag("--json", devices_options.json, "Print JSON instead of text");
  devices->add_option("--device", devices_device, "Mark this device as chosen (as QWENVK_DEVICE)");

  qvk::app::TokenizeOptions tokenize_options;
  CLI::App* tokenize = app.add_subcommand("tokenize", "Print the token ids of a text or a chat, and their decoding");
  tokenize->add_option("--model", tokenize_options.model, "Hugging Face model folder or .gguf file")->required();
  auto* text = tokenize->add_option("--text", tokenize_options.text, "Text to tokenize");
  auto* text_file = tokenize->add_option("--text-file", tokenize_options.text_file, "File whose text to tokenize");
  auto* chat_file =
      tokenize->add_option("--chat", tokenize_options.chat_file,
                           "JSON file [{\"role\":..,\"content\":..},...] to format with the chat template");
  text->excludes(text_file)->excludes(chat_file);
  text_file->excludes(chat_file);
  tokenize->require_option(2, 2);  // --model and one input

  qvk::app::InfoOptions info_options;
  CLI::App* info =
      app.add_subcommand("info", "Describe a model: sizes, tensor types, tokenizer, KV cache per 1k tokens");
  info->add_option("--model", info_options.model, "Hugging Face model folder or .gguf file")->required();

  qvk::app::LogitsOptions logits_options;
  CLI::App* logits = app.add_subcommand("logits", "Top logits at every prompt position, then greedy steps");
  AddModelOptions(logits, logits_options.model);
  logits->add_option("--ids", logits_options.ids, "Prompt token ids, comma separated")->required()->delimiter(',');
  logits->add_option("--top", logits_options.top, "Logits per position (top K)");
  logits->add_option("--greedy", logits_options.greedy, "Greedy single-token steps after the prompt");
  logits->add_option("--dump-last", logits_options.dump_last, "Write every logit of the last position (float32 LE)");

  qvk::app::AttentionOptions attention_options;
  CLI::App* attention = app.add_subcommand("attention", "Write the prefill's attention probabilities [L,H,T,T] f32");
  AddModelOptions(attention, attention_options.model);
  attention->add_option("--ids", attention_options.ids, "Prompt token ids")->required()->delimiter(',');
  attention->add_option("--out", attention_options.out, "Output file")->required();

  qvk::app::GenerateOptions generate_options;
  CLI::App* generate = app.add_subcommand("generate", "Stream a continuation of a prompt");
  AddModelOptions(generate, generate_options.model);
  generate->add_option("--prompt", generate_options.prompt, "Prompt text")->required();
  generate->add_flag("--chat", generate_options.chat, "Wrap the prompt as a user turn in the chat template");
  AddSamplingOptions(generate, generate_options);

  qvk::app::GenerateOptions chat_options;
  CLI::App* chat = app.add_subcommand("chat", "Chat in the terminal (history kept; /reset, /exit)");
  AddModelOptions(chat, chat_options.model);
  chat->add_option("--system", chat_options.prompt, "System prompt (default: the template's)");
  AddSamplingOptions(chat, chat_options);

  CLI11_PARSE(app, argc, argv);
  int status = 0;
  try {
    if (devices->parsed()) status = qvk::app::RunDevices(devices_options, devices_device);
    if (info->parsed()) status = qvk::app::RunInfo(info_options);
    if (tokenize->parsed()) status = qvk::app::RunTokenize(tokenize_options);
    if (logits->parsed()) status = qvk::app::RunLogits(logits_options);
    if (attention->parsed()) status = qvk::app::RunAttention(attention_options);
    if (generate->parsed()) status = qvk::app::RunGenerate(generate_options);
    if (chat->parsed()) status = qvk::app::RunChat(chat_options);
    if (app.get_subcommands().empty()) status = qvk::app::RunDesktop(desktop_options);
  } catch (const qvk::Error& e) {
    std::fprintf(stderr, "qwenvk: %s\n", e.what());
    status = 1;
  } catch (const std::exception& e) {  // out of memory, a file system failure: said, not a crash
    std::fprintf(stderr, "qwenvk: %s\n", e.what());
    status = 1;
  }
  // With QWENVK_VALIDATION=1 a validation message is a failure, whatever the command did.
  if (const uint64_t messages = qvk::Instance::ProcessValidationMessageCount(); messages > 0) {
    std::fprintf(stderr, "qwenvk: the Vulkan validation layer reported %llu messages\n",
                 static_cast<unsigned long long>(messages));
    return 3;
  }
  return status;
}
