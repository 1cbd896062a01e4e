// Sections: tokenize / info / logits / generate / chat
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/runtime.h"
#include "app/terminal_input.h"
#include "base/error.h"
#include "base/numeric.h"
#include "chat/prompt_plan.h"
#include "model/generate.h"
#include "model/weight_source.h"

namespace qvk::app {
namespace {

using nlohmann::json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot read {}", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<ChatMessage> ParseChat(const std::string& path) {
  json doc;
  try {
    doc = json::parse(ReadFile(path));
  } catch (const json::exception& e) {
    throw Error(fmt::format("{} is not valid JSON: {}", path, e.what()));
  }
  if (!doc.is_array()) throw Error(fmt::format("{}: expected a list of {{\"role\", \"content\"}} objects", path));
  std::vector<ChatMessage> messages;
  for (const auto& m : doc) {
    if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
        !m["content"].is_string()) {
      throw Error(fmt::format("{}: every message needs string \"role\" and \"content\"", path));
    }
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return messages;
}

// The k largest logits, descending, ties to the lower id.
json TopLogits(std::span<const float> logits, uint32_t k) {
  std::vector<uint32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0u);
  k = std::min<uint32_t>(k, static_cast<uint32_t>(logits.size()));
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](uint32_t a, uint32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  json ids = json::array(), values = json::array();
  for (uint32_t i = 0; i < k; ++i) {
    ids.push_back(order[i]);
    values.push_back(logits[order[i]]);
  }
  return {{"ids", ids}, {"logits", values}};
}

void WriteFloats(const std::string& path, std::span<const float> values) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size_bytes()));
  out.close();
  if (!out) throw Error(fmt::format("could not write {} (disk full or not writable?)", path));
}

// The options over the model's generation_config.json.
chat::SamplingChoice ChoiceFrom(const GenerateOptions& o, const GenerationConfig& model) {
  chat::SamplingChoice choice = chat::ModelSamplingChoice(model, {.temperature = o.temperature,
                                                                  .top_k = o.top_k,
                                                                  .top_p = o.top_p,
                                                                  .min_p = o.min_p,
                                                                  .repetition_penalty = o.repeat_penalty,
                                                                  .seed = o.seed});
  choice.greedy = o.greedy;
  return choice;
}

// After the streamed text's line has ended.
void PrintStats(const GenerationStats& s) {
  if (s.context_full) std::fprintf(stderr, "[stopped: the context is full]\n");
  std::fprintf(stderr, "[%u prompt tokens, %u generated; time to first token %.3f s; %.1f tokens/s]\n", s.prompt_tokens,
               s.generated_tokens, s.time_to_first_token_s, s.decode_tokens_per_s);
}

bool PrintText(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return true;
}

}  // namespace

// --- tokenize -------------------------------------------------------------------------------

int RunTokenize(const TokenizeOptions& o) {
  const ModelFiles files(o.model);
  const std::vector<uint32_t> ids = o.chat_file
                                        ? files.EncodeChat(ParseChat(*o.chat_file), /*add_generation_prompt=*/true)
                                        : files.tokenizer().Encode(o.text ? *o.text : ReadFile(*o.text_file));
  const json out = {{"ids", ids}, {"text", files.tokenizer().Decode(ids)}};
  std::printf("%s\n", out.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  return 0;
}

// --- info -----------------------------------------------------------------------------------

int RunInfo(const InfoOptions& o) {
  const ModelFiles files(o.model);
  const ModelConfig& c = files.config();
  const WeightSource& weights = files.weights();
  std::map<std::string, uint32_t> types;
  for (const auto& name : weights.names()) {
    if (const auto t = weights.Find(name)) ++types[DTypeName(t->dtype)];
  }
  std::vector<uint32_t> windows;
  for (uint32_t w : c.layer_window) {
    if (w != 0) windows.push_back(w);
  }
  const uint64_t kv_per_1k = KvCacheBytes(c, 1024);
  // Parameters, and what one token computes with and reads: the embedding's one row (all of it
  // when it is also the output projection), every other matrix in full, and of a sparse layer's
  // experts only the chosen k of n.
  uint64_t parameters = 0, active = 0, bytes_per_token = 0;
  for (const auto& [name, shape] : ExpectedTensors(c)) {
    const uint64_t elements = std::accumulate(shape.begin(), shape.end(), uint64_t{1}, std::multiplies<>());
    const uint64_t bytes = weights.Get(name).data.size();
    parameters += elements;
    if (name.find(".mlp.experts.") != std::string::npos) {
      active += elements * c.moe->experts_per_token / c.moe->num_experts;
      bytes_per_token += bytes * c.moe->experts_per_token / c.moe->num_experts;
    } else if (name == "model.embed_tokens.weight" && !c.tie_word_embeddings) {
      bytes_per_token += bytes / c.vocab_size;
    } else {
      active += elements;
      bytes_per_token += bytes;
    }
  }
  json experts = nullptr;
  if (c.moe) {
    experts = {{"experts", c.moe->num_experts},
               {"experts_per_token", c.moe->experts_per_token},
               {"expert_intermediate_size", c.moe->expert_intermediate_size},
               {"shared_expert_intermediate_size", c.moe->shared_expert_intermediate_size},
               {"norm_topk_prob", c.moe->norm_topk_prob},
               {"sparse_layers", std::count(c.layer_sparse.begin(), c.layer_sparse.end(), true)}};
  }
  json out = {{"path", files.path().string()},
              {"format", files.is_gguf() ? "gguf" : "safetensors"},
              {"architecture", c.architecture},
              {"model_type", c.model_type},
              {"hidden_size", c.hidden_size},
              {"layers", c.num_layers},
              {"attention_heads", c.num_heads},
              {"kv_heads", c.num_kv_heads},
              {"head_dim", c.head_dim},
              {"intermediate_size", c.intermediate_size},
              {"vocab_size", c.vocab_size},
              {"context_length", c.max_position_embeddings},
              {"rope_theta", c.rope_theta},
              {"rope_scaling", c.yarn ? json{{"type", "yarn"}, {"factor", c.yarn->factor}} : json(nullptr)},
              {"rms_norm_eps", ShortestDouble(c.rms_norm_eps)},
              {"tied_embeddings", c.tie_word_embeddings},
              {"qkv_bias", c.qkv_bias},
              {"qk_norm", c.qk_norm},
              {"mixture_of_experts", experts},
              {"parameters", parameters},
              {"active_parameters", active},
              {"weight_bytes_read_per_token", bytes_per_token},
              {"sliding_window_layers", windows.size()},
              {"tensor_types", types},
              {"weight_bytes", weights.total_bytes()},
              {"tokenizer", files.tokenizer_source()},
              {"tokenizer_tokens", files.tokenizer().vocab_size()},
              {"chat_template", files.has_chat_template() ? json(files.template_source()) : json(nullptr)},
              {"chat_template_error", files.template_error().empty() ? json(nullptr) : json(files.template_error())},
              // null: no thinking switch; else whether the template thinks with enable_thinking unset.
              {"chat_template_thinking", files.thinking_default() ? json(*files.thinking_default()) : json(nullptr)},
              {"kv_cache_bytes_per_1k_tokens", kv_per_1k}};
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

// --- logits ---------------------------------------------------------------------------------

int RunLogits(const LogitsOptions& o) {
  Runtime runtime(o.model);
  Engine& engine = runtime.engine();
  json positions = json::array();
  std::vector<float> last;
  engine.Prefill(o.ids, AllLogits{[&](uint32_t position, std::span<const float> logits) {
                   positions.push_back(TopLogits(logits, o.top));
                   if (position + 1 == o.ids.size()) last.assign(logits.begin(), logits.end());
                 }});
  if (o.dump_last) WriteFloats(*o.dump_last, last);

  // tokens[0] = argmax of the last prompt position; step k feeds tokens[k] through the cache.
  json tokens = json::array(), steps = json::array();
  uint32_t token = static_cast<uint32_t>(std::max_element(last.begin(), last.end()) - last.begin());
  tokens.push_back(token);
  for (uint32_t step = 0; step < o.greedy; ++step) {
    engine.Decode(token, {.full_row = true});
    const auto logits = engine.logits();
    json entry = TopLogits(logits, o.top);
    entry["input_id"] = token;
    steps.push_back(entry);
    token = engine.argmax();
    tokens.push_back(token);
  }
  const json out = {{"positions", positions}, {"greedy", {{"tokens", tokens}, {"steps", steps}}}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

// --thinking given for a model whose template has no such switch changes nothing: said, not hidden.
void WarnIfNoThinkingSwitch(const GenerateOptions& o, const ModelFiles& files) {
  if (o.template_options.enable_thinking && !files.has_thinking_switch()) {
    std::fprintf(stderr, "qwenvk: --thinking changes nothing here: the chat template of %s has no thinking switch\n",
                 files.path().filename().c_str());
  }
}

// --- generate -------------------------------------------------------------------------------

int RunGenerate(const GenerateOptions& o) {
  Runtime runtime(o.model);
  const ModelFiles& files = runtime.files();
  WarnIfNoThinkingSwitch(o, files);
  const std::vector<uint32_t> prompt =
      o.chat ? files.EncodeChat(std::vector<ChatMessage>{{"user", o.prompt}}, true, o.template_options)
             : files.tokenizer().Encode(o.prompt);
  Sampler sampler(chat::PlanSampling(ChoiceFrom(o, files.generation())));
  const GenerationStats stats = Generate(runtime.engine(), files, prompt, sampler, o.max_tokens,
                                         [](const GenerationStep& step) { return PrintText(step.text); });
  // stdout stays exactly the continuation; the statistics start on a line of their own.
  std::fputc('\n', stderr);
  PrintStats(stats);
  return 0;
}

// --- chat -----------------------------------------------------------------------------------

// Ctrl-C stops the reply being written and the chat goes on; Ctrl-C at the prompt, Ctrl-D or
// /exit quits.
int RunChat(const GenerateOptions& o) {
  Runtime runtime(o.model);
  const ModelFiles& files = runtime.files();
  WarnIfNoThinkingSwitch(o, files);
  Sampler sampler(chat::PlanSampling(ChoiceFrom(o, files.generation())));
  std::vector<ChatMessage> history;
  if (!o.prompt.empty()) history.push_back({"system", o.prompt});
  const size_t base = history.size();
  TerminalInput input;
  std::fprintf(stderr,
               "Chatting with %s. Ctrl-C stops a reply, /reset clears the conversation, /exit or Ctrl-D quits.\n",
               files.path().filename().c_str());
  while (true) {
    std::fprintf(stderr, "\n> ");
    const std::optional<std::string> line = input.NextLine();
    if (!line || *line == "/exit") break;
    if (*line == "/reset") {
      history.resize(base);
      std::fprintf(stderr, "[conversation cleared]\n");
      continue;
    }
    if (line->empty()) continue;
    history.push_back({"user", *line});
    chat::PromptPlan plan;
    try {
      plan = chat::PlanPrompt(files, history, chat::PromptKind::Reply, runtime.engine().context(), o.template_options);
    } catch (const Error& e) {
      std::fprintf(stderr, "[%s]\n", e.what());
      history.pop_back();
      continue;
    }
    if (plan.dropped != 0) {
      // Forgotten for good, so the next turn does not plan them again.
      const auto first = history.begin() + static_cast<std::ptrdiff_t>(base);
      history.erase(first, first + static_cast<std::ptrdiff_t>(plan.dropped));
      std::fprintf(stderr, "[context full: dropped the oldest turns]\n");
    }
    const std::vector<uint32_t>& prompt = plan.ids;
    std::string reply;
    input.ClearInterrupt();
    const GenerationStats stats =
        Generate(runtime.engine(), files, prompt, sampler, o.max_tokens, [&](const GenerationStep& step) {
          reply += step.text;
          return PrintText(step.text) && !input.interrupted();
        });
    // Each reply is a line of its own, on a terminal and in a file.
    PrintText("\n");
    if (input.interrupted()) {
      std::fprintf(stderr, "[stopped: Ctrl-C; the conversation goes on]\n");
      input.ClearInterrupt();
    }
    history.push_back({"assistant", reply});
    PrintStats(stats);
  }
  std::fputc('\n', stderr);
  return 0;
}

}  // namespace qvk::app
