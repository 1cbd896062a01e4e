#include "model/weights.h"

#include <fmt/format.h>

#include "gpu/device.h"
#include "gpu/error.h"
#include "gpu/numeric.h"
#include "gpu/uploader.h"
#include "model/safetensors.h"

namespace qvk {
namespace {

class WeightLoader {
 public:
  WeightLoader(Device& device, const SafetensorsModel& model, ModelWeights& out, const LoadProgress& progress)
      : device_(device), model_(model), out_(out), uploader_(device), progress_(progress) {
    for (const auto& name : model.names()) total_ += model.Get(name).data.size();
  }

  // Rows of several tensors stacked into one [sum(rows), cols] matrix of their common type.
  Matrix StackedMatrix(const std::vector<std::string>& names, MemoryKind kind = MemoryKind::Device) {
    const TensorView& first = model_.Get(names[0]);
    uint64_t rows = 0;
    for (const auto& name : names) {
      const TensorView& t = model_.Get(name);
      if (t.shape.size() != 2 || t.shape[1] != first.shape[1]) {
        throw Error(fmt::format("{}: expected a matrix with {} columns", name, first.shape[1]));
      }
      if (t.dtype != first.dtype) {
        throw Error(fmt::format("{} is {} but {} is {}; fused projections need one type", name, DTypeName(t.dtype),
                                names[0], DTypeName(first.dtype)));
      }
      rows += t.shape[0];
    }
    Buffer& storage = out_.matrix_storage.emplace_back(
        device_.allocator().CreateBuffer(RowBytes(first.dtype, static_cast<uint32_t>(first.shape[1])) * rows, kind));
    VkDeviceSize offset = 0;
    for (const auto& name : names) {
      const TensorView& t = model_.Get(name);
      Write(storage, offset, t.data);
      offset += t.data.size();
    }
    (kind == MemoryKind::Device ? out_.device_bytes : out_.host_bytes) += storage.size();
    return {&storage, 0, first.dtype, static_cast<uint32_t>(rows), static_cast<uint32_t>(first.shape[1])};
  }

  // Vectors (norm weights, biases) concatenated and converted to f32.
  Buffer F32Vector(const std::vector<std::string>& names) {
    std::vector<float> values;
    for (const auto& name : names) {
      const TensorView& t = model_.Get(name);
      const size_t n = t.elements();
      const std::byte* p = t.data.data();
      for (size_t i = 0; i < n; ++i) {
        switch (t.dtype) {
          case DType::F32:
            values.push_back(std::bit_cast<float>(Load<uint32_t>(p + 4 * i)));
            break;
          case DType::F16:
            values.push_back(HalfToFloat(Load<uint16_t>(p + 2 * i)));
            break;
          case DType::BF16:
            values.push_back(Bf16ToFloat(Load<uint16_t>(p + 2 * i)));
            break;
        }
      }
      Progress(t.data.size());
    }
    Buffer b = device_.allocator().CreateBuffer(values.size() * sizeof(float), MemoryKind::Device);
    uploader_.Write(b, 0, std::as_bytes(std::span(values)));
    out_.device_bytes += b.size();
    return b;
  }

  void Finish() { uploader_.Finish(); }

 private:
  template <class T>
  static T Load(const std::byte* p) {
    T value;
    std::memcpy(&value, p, sizeof(T));
    return value;
  }

  void Write(const Buffer& dst, VkDeviceSize offset, std::span<const std::byte> bytes) {
    // In pieces, so progress moves while a large embedding streams.
    constexpr size_t kPiece = size_t{32} << 20;
    for (size_t done = 0; done < bytes.size(); done += kPiece) {
      const size_t n = std::min(kPiece, bytes.size() - done);
      uploader_.Write(dst, offset + done, bytes.subspan(done, n));
      Progress(n);
    }
  }

  void Progress(uint64_t bytes) {
    done_ += bytes;
    if (progress_) progress_(done_, total_);
  }

  Device& device_;
  const SafetensorsModel& model_;
  ModelWeights& out_;
  Uploader uploader_;
  const LoadProgress& progress_;
  uint64_t done_ = 0, total_ = 0;
};

}  // namespace

ModelWeights LoadWeights(Device& device, const ModelConfig& config, const SafetensorsModel& model,
                         uint64_t device_budget, const LoadProgress& progress) {
  ValidateQwen2Tensors(config, model);
  ModelWeights w;
  // Matrix views point into matrix_storage: reserve so they never move.
  w.matrix_storage.reserve(4 * config.num_layers + 2);
  WeightLoader loader(device, model, w, progress);
  uint64_t budget_left = device_budget;
  // Where a set of tensors goes: GPU memory while the budget lasts, host memory after.
  auto place = [&](const std::vector<std::string>& names) {
    uint64_t bytes = 0;
    for (const auto& name : names) bytes += model.Get(name).data.size();
    if (bytes > budget_left) {
      budget_left = 0;  // later tensors go to the host too, keeping the GPU part contiguous
      return MemoryKind::Host;
    }
    budget_left -= bytes;
    return MemoryKind::Device;
  };
  const std::string head = config.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  const MemoryKind head_kind = place({head});
  if (config.tie_word_embeddings) {
    w.embed = loader.StackedMatrix({head}, head_kind);
    w.lm_head = w.embed;
  } else {
    w.lm_head = loader.StackedMatrix({head}, head_kind);
    w.embed = loader.StackedMatrix({"model.embed_tokens.weight"}, place({"model.embed_tokens.weight"}));
  }
  w.final_norm = loader.F32Vector({"model.norm.weight"});
  for (uint32_t l = 0; l < config.num_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    const std::vector<std::string> matrices = {p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight",
                                               p + "self_attn.v_proj.weight", p + "self_attn.o_proj.weight",
                                               p + "mlp.gate_proj.weight",    p + "mlp.up_proj.weight",
                                               p + "mlp.down_proj.weight"};
    const MemoryKind kind = place(matrices);
    if (kind == MemoryKind::Host) ++w.host_layers;
    LayerWeights layer;
    layer.input_norm = loader.F32Vector({p + "input_layernorm.weight"});
    layer.qkv = loader.StackedMatrix(
        {p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"}, kind);
    layer.qkv_bias =
        loader.F32Vector({p + "self_attn.q_proj.bias", p + "self_attn.k_proj.bias", p + "self_attn.v_proj.bias"});
    layer.o = loader.StackedMatrix({p + "self_attn.o_proj.weight"}, kind);
    layer.post_norm = loader.F32Vector({p + "post_attention_layernorm.weight"});
    layer.gate_up = loader.StackedMatrix({p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"}, kind);
    layer.down = loader.StackedMatrix({p + "mlp.down_proj.weight"}, kind);
    w.layers.push_back(std::move(layer));
  }
  loader.Finish();
  return w;
}

}  // namespace qvk
