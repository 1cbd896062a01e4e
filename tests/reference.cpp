#include "tests/reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/quantize.h"

namespace qvk::ref {

std::vector<float> MatMul(std::span<const float> w, std::span<const float> x, uint32_t rows, uint32_t cols,
                          uint32_t tokens, const std::vector<float>* bias, const std::vector<float>* residual,
                          std::vector<double>* magnitude) {
  std::vector<float> y(static_cast<size_t>(tokens) * rows);
  if (magnitude) magnitude->assign(y.size(), 0.0);
  for (uint32_t t = 0; t < tokens; ++t) {
    const float* xr = &x[static_cast<size_t>(t) * cols];
    for (uint32_t r = 0; r < rows; ++r) {
      const float* wr = &w[static_cast<size_t>(r) * cols];
      double acc = 0, mag = 0;
      for (uint32_t k = 0; k < cols; ++k) {
        const double p = static_cast<double>(wr[k]) * xr[k];
        acc += p;
        mag += std::abs(p);
      }
      const size_t o = static_cast<size_t>(t) * rows + r;
      if (bias) acc += (*bias)[r];
      if (residual) acc += (*residual)[o];
      y[o] = static_cast<float>(acc);
      if (magnitude)
        (*magnitude)[o] = mag + (bias ? std::abs((*bias)[r]) : 0) + (residual ? std::abs((*residual)[o]) : 0);
    }
  }
  return y;
}

std::vector<float> StoredMatMul(DType type, std::span<const std::byte> w, uint32_t rows, uint32_t cols,
                                std::span<const float> x, uint32_t tokens, const std::vector<float>* bias,
                                const std::vector<float>* residual, std::vector<double>* magnitude) {
  constexpr uint32_t kChunk = 4096;
  const uint64_t row_bytes = RowBytes(type, cols);
  std::vector<float> y(static_cast<size_t>(tokens) * rows);
  if (magnitude) magnitude->assign(y.size(), 0.0);
  for (uint32_t r0 = 0; r0 < rows; r0 += kChunk) {
    const uint32_t n = std::min(kChunk, rows - r0);
    const auto wf = DequantizeRows(type, w.subspan(r0 * row_bytes, n * row_bytes), n, cols);
    std::vector<float> chunk_bias, chunk_residual;
    if (bias) chunk_bias.assign(bias->begin() + r0, bias->begin() + r0 + n);
    for (uint32_t t = 0; residual && t < tokens; ++t) {
      const auto row = residual->begin() + static_cast<ptrdiff_t>(static_cast<size_t>(t) * rows + r0);
      chunk_residual.insert(chunk_residual.end(), row, row + n);
    }
    std::vector<double> chunk_magnitude;
    const auto chunk = MatMul(wf, x, n, cols, tokens, bias ? &chunk_bias : nullptr,
                              residual ? &chunk_residual : nullptr, &chunk_magnitude);
    for (uint32_t t = 0; t < tokens; ++t) {
      for (uint32_t r = 0; r < n; ++r) {
        const size_t o = static_cast<size_t>(t) * rows + r0 + r;
        y[o] = chunk[static_cast<size_t>(t) * n + r];
        if (magnitude) (*magnitude)[o] = chunk_magnitude[static_cast<size_t>(t) * n + r];
      }
    }
  }
  return y;
}

std::vector<float> RmsNorm(std::span<const float> x, std::span<const float> weight, uint32_t tokens, uint32_t cols,
                           float eps) {
  std::vector<float> y(x.size());
  for (uint32_t t = 0; t < tokens; ++t) {
    double ss = 0;
    for (uint32_t i = 0; i < cols; ++i) ss += static_cast<double>(x[t * cols + i]) * x[t * cols + i];
    const double inv = 1.0 / std::sqrt(ss / cols + eps);
    for (uint32_t i = 0; i < cols; ++i) y[t * cols + i] = static_cast<float>(x[t * cols + i] * inv * weight[i]);
  }
  return y;
}

void RopeHead(float* head, uint32_t head_dim, uint32_t pos, std::span<const float> inv_freq, float attention_factor) {
  const uint32_t half = head_dim / 2;
  for (uint32_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    const double c = std::cos(static_cast<double>(angle)) * attention_factor;
    const double s = std::sin(static_cast<double>(angle)) * attention_factor;
    const double x0 = head[i], x1 = head[i + half];
    head[i] = static_cast<float>(x0 * c - x1 * s);
    head[i + half] = static_cast<float>(x1 * c + x0 * s);
  }
}

std::vector<float> SwiGlu(std::span<const float> gate_up, uint32_t tokens, uint32_t inter) {
  std::vector<float> y(static_cast<size_t>(tokens) * inter);
  for (uint32_t t = 0; t < tokens; ++t) {
    for (uint32_t i = 0; i < inter; ++i) {
      const double g = gate_up[t * 2 * inter + i];
      const double u = gate_up[t * 2 * inter + inter + i];
      y[t * inter + i] = static_cast<float>(g / (1.0 + std::exp(-g)) * u);
    }
  }
  return y;
}

BoundedValue SwiGluBound(double g, double u, double g_tolerance, double u_tolerance) {
  const double silu = g / (1.0 + std::exp(-g));
  const double value = silu * u;
  return {value, 1.1 * std::abs(u) * g_tolerance + std::abs(silu) * u_tolerance + 1e-5 * std::abs(value)};
}

AttentionResult Attention(std::span<const float> q, std::span<const uint32_t> positions, std::span<const float> k,
                          std::span<const float> v, uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim,
                          uint32_t capacity, uint32_t window, uint32_t probs_stride) {
  const auto tokens = static_cast<uint32_t>(positions.size());
  AttentionResult r;
  r.out.assign(static_cast<size_t>(tokens) * n_heads * head_dim, 0.0f);
  r.probs.assign(static_cast<size_t>(n_heads) * tokens * probs_stride, 0.0f);
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const uint32_t group = n_heads / n_kv_heads;
  for (uint32_t t = 0; t < tokens; ++t) {
    const uint32_t pos = positions[t];
    const uint32_t first = (window != 0 && pos + 1 > window) ? pos + 1 - window : 0;
    for (uint32_t h = 0; h < n_heads; ++h) {
      const uint32_t g = h / group;
      const float* qh = &q[(static_cast<size_t>(t) * n_heads + h) * head_dim];
      std::vector<double> s(pos + 1, -INFINITY);
      double m = -INFINITY;
      for (uint32_t j = first; j <= pos; ++j) {
        const float* kj = &k[(static_cast<size_t>(g) * capacity + j) * head_dim];
        double dot = 0;
        for (uint32_t d = 0; d < head_dim; ++d) dot += static_cast<double>(qh[d]) * kj[d];
        s[j] = dot * scale;
        m = std::max(m, s[j]);
      }
      double sum = 0;
      for (uint32_t j = first; j <= pos; ++j) sum += std::exp(s[j] - m);
      std::vector<double> acc(head_dim, 0.0);
      for (uint32_t j = first; j <= pos; ++j) {
        const double p = std::exp(s[j] - m) / sum;
        if (j < probs_stride) r.probs[(static_cast<size_t>(h) * tokens + t) * probs_stride + j] = static_cast<float>(p);
        const float* vj = &v[(static_cast<size_t>(g) * capacity + j) * head_dim];
        for (uint32_t d = 0; d < head_dim; ++d) acc[d] += p * vj[d];
      }
      for (uint32_t d = 0; d < head_dim; ++d) {
        r.out[(static_cast<size_t>(t) * n_heads + h) * head_dim + d] = static_cast<float>(acc[d]);
      }
    }
  }
  return r;
}

std::vector<float> AttentionReduce(std::span<const float> p, const MapReduction& r) {
  const uint32_t out_rows = (r.band_end - r.band_begin + r.cell - 1) / r.cell;
  const uint32_t out_cols = (r.cols + r.cell - 1) / r.cell;
  std::vector<float> out(static_cast<size_t>(r.planes) * out_rows * out_cols);
  for (uint32_t k = 0; k < r.planes; ++k) {
    for (uint32_t i = 0; i < out_rows; ++i) {
      const uint32_t row_begin = r.band_begin + i * r.cell;
      const uint32_t row_end = std::min(row_begin + r.cell, r.band_end);
      for (uint32_t j = 0; j < out_cols; ++j) {
        const uint32_t col_end = std::min((j + 1) * r.cell, r.cols);
        double value = 0;
        size_t count = 0;
        for (uint32_t h = r.head_first + k * r.plane_heads; h < r.head_first + (k + 1) * r.plane_heads; ++h) {
          for (uint32_t row = row_begin; row < row_end; ++row) {
            const size_t base = (static_cast<size_t>(h) * r.rows + row - r.first_row) * r.stride;
            const double sink = p[base];
            const double scale = !r.mute_sink ? 1.0 : sink < 1.0 ? 1.0 / (1.0 - sink) : 0.0;
            for (uint32_t col = j * r.cell; col < col_end; ++col) {
              const double v = r.mute_sink && col == 0 ? 0.0 : p[base + col] * scale;
              value = r.max ? std::max(value, v) : value + v;
              ++count;
            }
          }
        }
        out[(static_cast<size_t>(k) * out_rows + i) * out_cols + j] =
            static_cast<float>(r.max ? value : value / static_cast<double>(count));
      }
    }
  }
  return out;
}

std::vector<float> HeadNorm(std::span<const float> qkv, std::span<const float> weight, uint32_t tokens,
                            uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim, float eps) {
  std::vector<float> out(qkv.begin(), qkv.end());
  const uint32_t stride = (n_heads + 2 * n_kv_heads) * head_dim;
  for (uint32_t t = 0; t < tokens; ++t) {
    for (uint32_t h = 0; h < n_heads + n_kv_heads; ++h) {
      const std::span<const float> head = qkv.subspan(t * stride + h * head_dim, head_dim);
      const std::vector<float> normed =
          RmsNorm(head, weight.subspan(h < n_heads ? 0 : head_dim, head_dim), 1, head_dim, eps);
      std::copy(normed.begin(), normed.end(), out.begin() + t * stride + h * head_dim);
    }
  }
  return out;
}

Routing MoeRoute(std::span<const float> logits, uint32_t tokens, uint32_t experts, uint32_t k, bool normalize) {
  Routing r;
  for (uint32_t t = 0; t < tokens; ++t) {
    const std::span<const float> row = logits.subspan(t * experts, experts);
    const double m = *std::max_element(row.begin(), row.end());
    double sum = 0;
    for (float v : row) sum += std::exp(v - m);
    const std::vector<uint32_t> best = TopK(row, k);
    double chosen = 0;
    std::vector<double> probs;
    for (uint32_t e : best) {
      probs.push_back(std::exp(row[e] - m) / sum);
      chosen += probs.back();
    }
    for (size_t j = 0; j < best.size(); ++j) {
      r.ids.push_back(best[j]);
      r.weights.push_back(static_cast<float>(normalize ? probs[j] / chosen : probs[j]));
    }
  }
  return r;
}

std::vector<std::byte> RegroupedBlocks(std::span<const std::byte> blocks, uint32_t block_bytes, uint32_t scale_offset,
                                       uint32_t group) {
  const size_t group_bytes = size_t{group} * block_bytes, rest_bytes = block_bytes - 2;
  // The last group's missing blocks are zeros.
  std::vector<std::byte> padded(blocks.begin(), blocks.end());
  padded.resize((blocks.size() + group_bytes - 1) / group_bytes * group_bytes);
  std::vector<std::byte> out(padded.size());
  for (size_t first = 0; first < padded.size(); first += group_bytes) {
    for (size_t j = 0; j < group; ++j) {
      const std::byte* block = &padded[first + j * block_bytes];
      std::byte* rest = &out[first + 2 * group + j * rest_bytes];
      std::copy_n(block + scale_offset, 2, &out[first + 2 * j]);
      std::copy_n(block, scale_offset, rest);
      std::copy_n(block + scale_offset + 2, block_bytes - scale_offset - 2, rest + scale_offset);
    }
  }
  return out;
}

std::vector<float> ExpertProducts(DType type, std::span<const std::byte> w, uint32_t rows, uint32_t cols,
                                  std::span<const float> x, bool x_per_pair, std::span<const uint32_t> ids, uint32_t k,
                                  std::vector<double>* magnitude) {
  const size_t expert_bytes = RowBytes(type, cols) * rows;
  std::vector<float> y;
  if (magnitude) magnitude->clear();
  for (size_t pair = 0; pair < ids.size(); ++pair) {
    const size_t row = x_per_pair ? pair : pair / k;
    std::vector<double> part_magnitude;
    const std::vector<float> part = StoredMatMul(type, w.subspan(ids[pair] * expert_bytes, expert_bytes), rows, cols,
                                                 x.subspan(row * cols, cols), 1, nullptr, nullptr, &part_magnitude);
    y.insert(y.end(), part.begin(), part.end());
    if (magnitude) magnitude->insert(magnitude->end(), part_magnitude.begin(), part_magnitude.end());
  }
  return y;
}

std::vector<float> MoeCombine(std::span<const float> x, std::span<const float> weights, std::span<const float> experts,
                              const std::vector<float>* shared, const std::vector<float>* gate, uint32_t tokens,
                              uint32_t hidden, uint32_t k) {
  std::vector<float> out(x.begin(), x.end());
  for (uint32_t t = 0; t < tokens; ++t) {
    for (uint32_t c = 0; c < hidden; ++c) {
      double sum = 0;
      for (uint32_t j = 0; j < k; ++j) sum += double{weights[t * k + j]} * experts[(t * k + j) * hidden + c];
      if (shared) sum += (*shared)[t * hidden + c] / (1.0 + std::exp(-double{(*gate)[t]}));
      out[t * hidden + c] = static_cast<float>(out[t * hidden + c] + sum);
    }
  }
  return out;
}

std::vector<uint32_t> TopK(std::span<const float> values, uint32_t k) {
  std::vector<uint32_t> idx(values.size());
  std::iota(idx.begin(), idx.end(), 0u);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](uint32_t a, uint32_t b) { return values[a] > values[b] || (values[a] == values[b] && a < b); });
  idx.resize(k);
  return idx;
}

std::vector<float> FmaChains(uint32_t invocations, uint32_t chains, uint32_t steps, float b, float c) {
  std::vector<float> sums(invocations);
  for (uint32_t i = 0; i < invocations; ++i) {
    double sum = 0;
    for (uint32_t k = 0; k < chains; ++k) {
      double a = static_cast<double>((i * chains + k) % 17);
      for (uint32_t s = 0; s < steps; ++s) a = a * b + c;
      sum += a;
    }
    sums[i] = static_cast<float>(sum);
  }
  return sums;
}

}  // namespace qvk::ref
