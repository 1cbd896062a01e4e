// `qwenvk attention`: the prefill's attention maps, captured a band of query rows at a time so
// that neither the GPU nor the host ever holds T^2 values for every head at once. --out writes the
// raw float32 maps of the chosen layers and heads, [layers, planes, T, T]; --png, --csv and --npy
// write one map.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "app/runtime.h"
#include "base/error.h"
#include "base/numeric.h"
#include "chat/attention_export.h"
#include "model/attention_capture.h"

namespace qvk::app {
namespace {

// The maps a band holds at once on the GPU (and in host memory on their way to the files).
constexpr uint64_t kBandBytes = uint64_t{64} << 20;

// The PNG's least size in pixels: a map of a few tokens still shows.
constexpr uint32_t kMinPngPixels = 512;

// One request per chosen layer, over every query row, as the options choose its heads.
std::vector<AttentionRequest> Requests(const AttentionOptions& o, const ModelConfig& c) {
  if (o.layer && *o.layer >= c.num_layers) {
    throw Error(fmt::format("--layer {} is out of range: the model has {} layers (0 to {})", *o.layer, c.num_layers,
                            c.num_layers - 1));
  }
  const bool group = o.reduce == "group-mean" || o.reduce == "group-max";
  const uint32_t heads = group ? c.num_kv_heads : c.num_heads;
  if (o.head && *o.head >= heads) {
    throw Error(fmt::format("--head {} is out of range: the model has {} {} (0 to {})", *o.head, heads,
                            group ? "KV heads, which --head picks with a group reduction" : "attention heads",
                            heads - 1));
  }
  const HeadReduce reduce = o.reduce.ends_with("max") ? HeadReduce::Max : HeadReduce::Mean;
  std::vector<AttentionRequest> requests;
  for (uint32_t l = o.layer.value_or(0); l < (o.layer ? *o.layer + 1 : c.num_layers); ++l) {
    if (group) {
      requests.push_back(o.head ? KvGroup(c, l, *o.head, reduce) : EveryKvGroup(c, l, reduce));
    } else if (!o.reduce.empty()) {
      requests.push_back(AllHeads(c, l, reduce));
    } else {
      requests.push_back(o.head ? OneHead(l, *o.head) : EveryHead(c, l, HeadReduce::Mean));
    }
  }
  return requests;
}

// The raw maps, [requests, planes, T, T] float32, written band by band where each band's rows go.
class RawMapsFile {
 public:
  RawMapsFile(const std::string& path, uint32_t tokens) : path_(path), tokens_(tokens) {
    out_.open(path, std::ios::binary | std::ios::trunc);
    if (!out_) throw Error(fmt::format("cannot write {}", path));
  }
  void Write(size_t first_plane, const AttentionMap& band) {
    for (uint32_t k = 0; k < band.planes; ++k) {
      const uint64_t row0 = (first_plane + k) * uint64_t{tokens_} + band.request.first_row;
      out_.seekp(static_cast<std::streamoff>(row0 * tokens_ * 4));
      const std::span<const float> values = band.plane(k);
      out_.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size_bytes()));
    }
  }
  void Close() {
    out_.close();
    if (!out_) throw Error(fmt::format("could not write {} (disk full or not writable?)", path_));
  }

 private:
  std::string path_;
  uint32_t tokens_;
  std::ofstream out_;
};

}  // namespace

int RunAttention(const AttentionOptions& o) {
  if (o.ids.empty()) throw Error("--ids: give at least one token id");
  auto files = std::make_unique<ModelFiles>(o.model.model);
  const ModelConfig& c = files->config();
  const std::vector<AttentionRequest> requests = Requests(o, c);
  // Refused before the model loads and the capture runs.
  for (const auto& path : {o.out, o.png, o.csv, o.npy}) {
    if (path) chat::CheckWritable(*path);
  }
  Runtime runtime(std::move(files), o.model);
  Engine& engine = runtime.engine();

  const auto tokens = static_cast<uint32_t>(o.ids.size());
  uint32_t planes = 0;
  for (const AttentionRequest& r : requests) planes += r.planes;
  const auto band_rows =
      static_cast<uint32_t>(std::clamp<uint64_t>(kBandBytes / (uint64_t{4} * planes * tokens), 1, tokens));
  std::optional<RawMapsFile> raw;
  if (o.out) raw.emplace(*o.out, tokens);
  // The one map --png, --csv and --npy write, assembled from the bands.
  std::optional<AttentionMap> single;
  if (o.png || o.csv || o.npy) single.emplace(requests[0], tokens);
  const auto band_of = [&](uint32_t first) {
    std::vector<AttentionRequest> band = requests;
    for (AttentionRequest& r : band) {
      r.first_row = first;
      r.end_row = std::min(first + band_rows, tokens);
    }
    return band;
  };
  // The first band is the largest: what the capture holds on the GPU at any time.
  const CapturePlan plan = engine.PlanAttentionCapture(tokens, band_of(0));
  const uint64_t capture_bytes = plan.probs_bytes + plan.map_bytes;
  spdlog::info(
      "capturing {} tokens: {:.1f} MiB on the GPU at a time ({:.1f} MiB of one chunk's probabilities, "
      "{:.1f} MiB of maps), {} query rows a band",
      tokens, static_cast<double>(capture_bytes) / (1 << 20), static_cast<double>(plan.probs_bytes) / (1 << 20),
      static_cast<double>(plan.map_bytes) / (1 << 20), band_rows);
  for (uint32_t first = 0; first < tokens; first += band_rows) {
    const std::vector<AttentionRequest> band = band_of(first);
    const std::vector<AttentionMap> maps = engine.CaptureAttention(o.ids, band);
    size_t plane = 0;
    for (const AttentionMap& map : maps) {
      if (raw) raw->Write(plane, map);
      plane += map.planes;
    }
    if (single)
      std::copy(maps[0].values.begin(), maps[0].values.end(), single->values.begin() + size_t{first} * tokens);
  }
  if (raw) raw->Close();

  nlohmann::json out = {{"shape", {requests.size(), planes / requests.size(), tokens, tokens}},
                        {"capture_gpu_bytes", capture_bytes}};
  if (o.out) out["file"] = *o.out;
  if (o.png) {
    const chat::PngOptions png{.pixels_per_value = (kMinPngPixels + tokens - 1) / tokens};
    out["png"] = *o.png;
    out["scale_max"] = ShortestDouble(chat::WriteAttentionPng(*o.png, *single, 0, png));
  }
  if (o.csv) {
    chat::WriteAttentionCsv(*o.csv, *single, 0);
    out["csv"] = *o.csv;
  }
  if (o.npy) {
    chat::WriteAttentionNpy(*o.npy, *single, 0);
    out["npy"] = *o.npy;
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace qvk::app
