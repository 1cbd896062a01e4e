#include "model/weights.h"

#include <fmt/format.h>

#include "base/error.h"
#include "gpu/device.h"
#include "gpu/graph.h"
#include "gpu/ops.h"
#include "gpu/uploader.h"
#include "model/quantize.h"
#include "model/weight_source.h"

namespace qvk {
namespace {

class WeightLoader {
 public:
  WeightLoader(Device& device, const WeightSource& source, const LoadOptions& options, ModelWeights& out,
               const LoadProgress& progress)
      : device_(device), source_(source), options_(options), out_(out), uploader_(device), progress_(progress) {
    total_ = source.total_bytes();
  }

  // The stored type of a matrix, or the type it is quantized to while loading.
  DType TargetType(const SourceTensor& t) const {
    if (!options_.quantize || IsQuantized(t.dtype) || t.shape[1] % BlockElements(*options_.quantize) != 0) {
      return t.dtype;
    }
    return *options_.quantize;
  }

  // Tensors of one type stacked row-wise into one matrix; tensors of different types become
  // separate parts with their output offsets.
  std::vector<Projection> Projections(const std::vector<std::string>& names, MemoryKind kind) {
    std::vector<SourceTensor> tensors;
    for (const auto& name : names) tensors.push_back(source_.Get(name));
    std::vector<Projection> parts;
    uint32_t offset = 0;
    for (size_t i = 0; i < tensors.size();) {
      size_t j = i + 1;
      while (j < tensors.size() && TargetType(tensors[j]) == TargetType(tensors[i])) ++j;
      parts.push_back({Stack(std::span(tensors).subspan(i, j - i), kind), offset});
      offset += parts.back().w.rows;
      i = j;
    }
    return parts;
  }

  // Tensors of one type stacked into one matrix (a layer's experts); throws if their types differ.
  Matrix StackedMatrix(const std::vector<std::string>& names, MemoryKind kind) {
    std::vector<Projection> parts = Projections(names, kind);
    if (parts.size() != 1) {
      throw Error(fmt::format("{} and {} are stored as different types; a layer's experts must share one",
                              names.front(), names.back()));
    }
    return parts[0].w;
  }

  Matrix SingleMatrix(const std::string& name, MemoryKind kind) {
    const SourceTensor t = source_.Get(name);
    return Stack(std::span(&t, 1), kind);
  }

  // Vectors (norm weights, biases) concatenated and converted to f32.
  Buffer F32Vector(const std::vector<std::string>& names) {
    std::vector<float> values;
    for (const auto& name : names) {
      const SourceTensor t = source_.Get(name);
      const auto n = static_cast<uint32_t>(t.shape[0]);
      const std::vector<float> part = DequantizeRows(t.dtype, t.data, 1, n);
      values.insert(values.end(), part.begin(), part.end());
      Progress(t.data.size());
    }
    Buffer b = device_.allocator().CreateBuffer(values.size() * sizeof(float), MemoryKind::Device);
    uploader_.Write(b, 0, std::as_bytes(std::span(values)));
    out_.device_bytes += b.size();
    return b;
  }

  // Waits for every upload, then regroups the blocks of the types the kernels read regrouped.
  void Finish() {
    uploader_.Finish();
    if (regrouped_.empty()) return;
    Graph g(device_);
    for (const Matrix& m : regrouped_) ops::RegroupBlocks(g, m, "regroup");
    g.Run();
  }

 private:
  Matrix Stack(std::span<const SourceTensor> tensors, MemoryKind kind) {
    const DType type = TargetType(tensors[0]);
    const auto cols = static_cast<uint32_t>(tensors[0].shape[1]);
    uint64_t rows = 0;
    for (const auto& t : tensors) rows += t.shape[0];
    const VkDeviceSize row_bytes = RowBytes(type, cols);
    Buffer& storage =
        out_.matrix_storage.emplace_back(device_.allocator().CreateBuffer(MatrixBytes(type, rows, cols), kind));
    VkDeviceSize offset = 0;
    for (const auto& t : tensors) {
      if (type == t.dtype) {
        Write(storage, offset, t.data);
      } else {
        Quantize(storage, offset, t, type);
      }
      offset += row_bytes * t.shape[0];
    }
    (kind == MemoryKind::Device ? out_.device_bytes : out_.host_bytes) += storage.size();
    const Matrix m{&storage, 0, type, static_cast<uint32_t>(rows), cols};
    if (IsRegrouped(type)) regrouped_.push_back(m);
    return m;
  }

  // In pieces, so progress moves while a large embedding streams.
  void Write(const Buffer& dst, VkDeviceSize offset, std::span<const std::byte> bytes) {
    constexpr size_t kPiece = size_t{32} << 20;
    for (size_t done = 0; done < bytes.size(); done += kPiece) {
      const size_t n = std::min(kPiece, bytes.size() - done);
      uploader_.Write(dst, offset + done, bytes.subspan(done, n));
      Progress(n);
    }
  }

  // Quantized a few rows at a time, so host memory holds one chunk, never the whole matrix.
  void Quantize(const Buffer& dst, VkDeviceSize offset, const SourceTensor& t, DType type) {
    const auto cols = static_cast<uint32_t>(t.shape[1]);
    const uint64_t rows_per_chunk = std::max<uint64_t>(1, (uint64_t{8} << 20) / (uint64_t{4} * cols));
    const VkDeviceSize source_row_bytes = RowBytes(t.dtype, cols);
    for (uint64_t r = 0; r < t.shape[0]; r += rows_per_chunk) {
      const auto n = static_cast<uint32_t>(std::min(rows_per_chunk, t.shape[0] - r));
      const std::vector<float> values =
          DequantizeRows(t.dtype, t.data.subspan(r * source_row_bytes, n * source_row_bytes), n, cols);
      const std::vector<std::byte> blocks = QuantizeRows(type, values, n, cols);
      uploader_.Write(dst, offset + r * RowBytes(type, cols), blocks);
      Progress(source_row_bytes * n);
    }
  }

  void Progress(uint64_t bytes) {
    done_ += bytes;
    if (progress_) progress_(done_, total_);
  }

  Device& device_;
  const WeightSource& source_;
  const LoadOptions& options_;
  ModelWeights& out_;
  Uploader uploader_;
  const LoadProgress& progress_;
  uint64_t done_ = 0, total_ = 0;
  std::vector<Matrix> regrouped_;  // matrices whose blocks Finish regroups
};

}  // namespace

ModelWeights LoadWeights(Device& device, const ModelConfig& config, const WeightSource& source,
                         const LoadOptions& options, const LoadProgress& progress) {
  if (options.quantize && *options.quantize != DType::Q8_0 && *options.quantize != DType::Q4_0) {
    throw Error(fmt::format("quantizing on load supports q8_0 and q4_0, not {}", DTypeName(*options.quantize)));
  }
  ModelWeights w;
  // Matrix views point into matrix_storage: reserve so they never move.
  w.matrix_storage.reserve(14 * config.num_layers + 2);
  WeightLoader loader(device, source, options, w, progress);
  uint64_t budget_left = options.device_budget;
  // GPU memory while the budget lasts; once a part does not fit, everything after it stays on
  // the host, so the layers on the GPU are always the first ones.
  auto place = [&](const std::vector<std::string>& names) {
    uint64_t bytes = 0;
    for (const auto& name : names) {
      const SourceTensor t = source.Get(name);
      bytes += RowBytes(loader.TargetType(t), static_cast<uint32_t>(t.shape[1])) * t.shape[0];
    }
    if (bytes > budget_left) {
      budget_left = 0;
      return MemoryKind::Host;
    }
    budget_left -= bytes;
    return MemoryKind::Device;
  };
  const LayerRange range = options.layers.value_or(AllLayers(config));
  if (range.begin >= range.end || range.end > config.num_layers) {
    throw Error(fmt::format("layers {} to {} are not a range of the model's {} layers", range.begin, range.end,
                            config.num_layers));
  }
  const bool first = range.begin == 0, last = range.end == config.num_layers;
  const std::string embed = "model.embed_tokens.weight";
  const std::string head = config.tie_word_embeddings ? embed : "lm_head.weight";
  if (last) w.lm_head = loader.SingleMatrix(head, place({head}));
  if (first && last && config.tie_word_embeddings) {
    w.embed = w.lm_head;
  } else if (first) {
    w.embed = loader.SingleMatrix(embed, place({embed}));
  }
  if (last) w.final_norm = loader.F32Vector({"model.norm.weight"});
  w.layers.resize(config.num_layers);
  for (uint32_t l = range.begin; l < range.end; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    const std::vector<std::string> qkv = {p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight",
                                          p + "self_attn.v_proj.weight"};
    std::vector<std::string> matrices = {qkv[0], qkv[1], qkv[2], p + "self_attn.o_proj.weight"};
    std::vector<std::string> gate_up, experts_gate, experts_up, experts_down, shared_gate_up;
    if (config.sparse(l)) {
      for (uint32_t e = 0; e < config.moe->num_experts; ++e) {
        const std::string x = fmt::format("{}mlp.experts.{}.", p, e);
        experts_gate.push_back(x + "gate_proj.weight");
        experts_up.push_back(x + "up_proj.weight");
        experts_down.push_back(x + "down_proj.weight");
      }
      matrices.push_back(p + "mlp.gate.weight");
      for (const auto* names : {&experts_gate, &experts_up, &experts_down}) {
        matrices.insert(matrices.end(), names->begin(), names->end());
      }
      if (config.moe->shared_expert_intermediate_size > 0) {
        shared_gate_up = {p + "mlp.shared_expert.gate_proj.weight", p + "mlp.shared_expert.up_proj.weight"};
        matrices.insert(matrices.end(), {shared_gate_up[0], shared_gate_up[1], p + "mlp.shared_expert.down_proj.weight",
                                         p + "mlp.shared_expert_gate.weight"});
      }
    } else {
      gate_up = {p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"};
      matrices.insert(matrices.end(), {gate_up[0], gate_up[1], p + "mlp.down_proj.weight"});
    }
    const MemoryKind kind = place(matrices);
    if (kind == MemoryKind::Host) ++w.host_layers;
    LayerWeights layer;
    layer.input_norm = loader.F32Vector({p + "input_layernorm.weight"});
    layer.qkv = loader.Projections(qkv, kind);
    if (config.qkv_bias) {
      layer.qkv_bias =
          loader.F32Vector({p + "self_attn.q_proj.bias", p + "self_attn.k_proj.bias", p + "self_attn.v_proj.bias"});
    }
    if (config.qk_norm)
      layer.qk_norm = loader.F32Vector({p + "self_attn.q_norm.weight", p + "self_attn.k_norm.weight"});
    layer.o = loader.SingleMatrix(p + "self_attn.o_proj.weight", kind);
    layer.post_norm = loader.F32Vector({p + "post_attention_layernorm.weight"});
    if (config.sparse(l)) {
      MoeLayerWeights moe;
      moe.router = loader.SingleMatrix(p + "mlp.gate.weight", kind);
      if (loader.TargetType(source.Get(experts_gate[0])) == loader.TargetType(source.Get(experts_up[0]))) {
        std::vector<std::string> interleaved;
        for (size_t e = 0; e < experts_gate.size(); ++e)
          interleaved.insert(interleaved.end(), {experts_gate[e], experts_up[e]});
        moe.gate_up = {{loader.StackedMatrix(interleaved, kind), 0}};
      } else {
        moe.gate_up = {{loader.StackedMatrix(experts_gate, kind), 0},
                       {loader.StackedMatrix(experts_up, kind), config.moe->expert_intermediate_size}};
      }
      moe.down = loader.StackedMatrix(experts_down, kind);
      if (!shared_gate_up.empty()) {
        moe.shared_gate_up = loader.Projections(shared_gate_up, kind);
        moe.shared_down = loader.SingleMatrix(p + "mlp.shared_expert.down_proj.weight", kind);
        moe.shared_gate = loader.SingleMatrix(p + "mlp.shared_expert_gate.weight", kind);
      }
      layer.moe = std::move(moe);
    } else {
      layer.gate_up = loader.Projections(gate_up, kind);
      layer.down = loader.SingleMatrix(p + "mlp.down_proj.weight", kind);
    }
    w.layers[l] = std::move(layer);
  }
  loader.Finish();
  return w;
}

}  // namespace qvk
