#pragma once
// Where weights come from, under the names transformers gives them: a Hugging Face folder of
// safetensors, or a GGUF file (whose llama.cpp names are mapped). The loader and the shape
// checks see one interface.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/dtype.h"

namespace qvk {

class GgufFile;
class SafetensorsModel;
struct ModelConfig;

struct SourceTensor {
  std::string name;   // as stored in the file, for messages
  std::string where;  // the file that holds it, for messages
  DType dtype;
  std::vector<uint64_t> shape;  // transformers order: [rows, cols] for a matrix, [n] for a vector
  std::span<const std::byte> data;
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // The tensor transformers calls `hf_name` (e.g. "model.layers.0.self_attn.q_proj.weight").
  virtual std::optional<SourceTensor> Find(std::string_view hf_name) const = 0;
  // Every tensor held, under transformers' name where it has one.
  virtual std::vector<std::string> names() const = 0;
  virtual uint64_t total_bytes() const = 0;
  virtual std::string description() const = 0;       // the folder or file, for messages
  SourceTensor Get(std::string_view hf_name) const;  // throws Error: missing tensor NAME in WHERE
};

std::unique_ptr<WeightSource> SafetensorsSource(const SafetensorsModel& model, const std::filesystem::path& folder);
std::unique_ptr<WeightSource> GgufSource(const GgufFile& file, const std::filesystem::path& path);

// Every tensor a model of `config` needs, under transformers' names, with its shape.
std::vector<std::pair<std::string, std::vector<uint64_t>>> ExpectedTensors(const ModelConfig& config);

// The source holds exactly the tensors a model of `config` needs, with their shapes, and
// its vectors are not quantized; throws Error naming the first tensor that is missing,
// misshapen or unexpected.
void ValidateQwen2Tensors(const ModelConfig& config, const WeightSource& source);

}  // namespace qvk
