#include "model/safetensors.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "base/bounded_json.h"
#include "base/error.h"
#include "model/input_limits.h"

namespace qvk {
namespace {

struct DTypeInfo {
  std::string_view name;
  DType type;
  uint64_t size;
};
constexpr std::array<DTypeInfo, 3> kDTypes = {
    {{"F32", DType::F32, 4}, {"F16", DType::F16, 2}, {"BF16", DType::BF16, 2}}};

struct ParsedTensor {
  TensorView view;
  uint64_t begin = 0, end = 0;  // within the data section
};

ParsedTensor ParseTensor(const std::string& file, const std::string& name, const nlohmann::json& entry,
                         std::span<const std::byte> data) {
  const auto fail = [&](std::string_view what) { return Error(fmt::format("{}: tensor '{}': {}", file, name, what)); };
  if (!entry.is_object()) throw fail(fmt::format("entry is a JSON {}, not an object", entry.type_name()));

  const auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string()) throw fail("\"dtype\" is missing or not a string");
  const auto& dtype_name = dtype->get_ref<const std::string&>();
  const auto info =
      std::find_if(kDTypes.begin(), kDTypes.end(), [&](const DTypeInfo& d) { return d.name == dtype_name; });
  if (info == kDTypes.end()) throw fail(fmt::format("dtype {} is not supported (only F32, F16 and BF16)", dtype_name));

  const auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array()) throw fail("\"shape\" is missing or not an array");
  ParsedTensor t;
  t.view.name = name;
  t.view.dtype = info->type;
  t.view.file = file;
  uint64_t elements = 1;
  for (const auto& dim : *shape) {
    if (!dim.is_number_unsigned()) {
      // Numbers only: dump() recurses, and a hostile nested array would overflow the stack.
      const std::string shown = dim.is_number() ? dim.dump() : std::string("a JSON ") + dim.type_name();
      throw fail(fmt::format("shape[{}] is {}, not a non-negative integer", t.view.shape.size(), shown));
    }
    const auto d = dim.get<uint64_t>();
    if (__builtin_mul_overflow(elements, d, &elements)) throw fail("shape has more elements than fit in 64 bits");
    t.view.shape.push_back(d);
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(elements, info->size, &bytes)) {
    throw fail(fmt::format("shape of {} is more bytes than fit in 64 bits", dtype_name));
  }

  const auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned()) {
    throw fail("\"data_offsets\" is missing or not [begin, end]");
  }
  t.begin = (*offsets)[0].get<uint64_t>();
  t.end = (*offsets)[1].get<uint64_t>();
  if (t.begin > t.end) throw fail(fmt::format("data_offsets [{}, {}] end before they begin", t.begin, t.end));
  if (t.end > data.size()) {
    throw fail(fmt::format("data_offsets [{}, {}] run past the end of the data ({} bytes; file truncated?)", t.begin,
                           t.end, data.size()));
  }
  if (t.end - t.begin != bytes) {
    throw fail(fmt::format("data_offsets [{}, {}] hold {} bytes but {} {} needs {}", t.begin, t.end, t.end - t.begin,
                           dtype_name, shape->dump(), bytes));
  }
  t.view.data = data.subspan(t.begin, t.end - t.begin);
  return t;
}

// Two tensors sharing bytes would let a write through one (a converter, a future in-place
// quantizer) corrupt the other; no writer produces that, so it means a broken or crafted file.
void CheckNoOverlap(const std::string& file, const std::vector<ParsedTensor>& parsed) {
  std::vector<const ParsedTensor*> tensors;
  for (const ParsedTensor& t : parsed) {
    if (t.begin != t.end) tensors.push_back(&t);
  }
  std::sort(tensors.begin(), tensors.end(),
            [](const ParsedTensor* a, const ParsedTensor* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < tensors.size(); ++i) {
    const ParsedTensor& a = *tensors[i - 1];
    const ParsedTensor& b = *tensors[i];
    if (b.begin < a.end) {
      throw Error(fmt::format("{}: tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", file, a.view.name, a.begin, a.end,
                              b.view.name, b.begin, b.end));
    }
  }
}

// Index entries name shards relative to the folder; anything else could reach outside it.
bool IsPlainFileName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find_first_of(std::string_view("/\\\0", 3)) == name.npos;
}

}  // namespace

uint64_t TensorView::elements() const {
  uint64_t n = 1;
  for (const uint64_t d : shape) n *= d;
  return n;
}

SafetensorsFile SafetensorsFile::Open(const std::filesystem::path& path) {
  SafetensorsFile out(MappedFile::Open(path));
  const std::string file = path.string();
  const std::span<const std::byte> bytes = out.file_.bytes();
  if (bytes.size() < 8) {
    throw Error(fmt::format("{}: {} bytes is too short for a safetensors file (it starts with an 8-byte header length)",
                            file, bytes.size()));
  }
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | std::to_integer<uint64_t>(bytes[i]);
  if (header_bytes > input_limits::kMaxSafetensorsHeaderBytes) {
    throw Error(fmt::format("{}: header length {} is over the {} MiB limit", file, header_bytes,
                            input_limits::kMaxSafetensorsHeaderBytes >> 20));
  }
  if (header_bytes > bytes.size() - 8) {
    throw Error(
        fmt::format("{}: header length {} runs past the end of the file ({} bytes)", file, header_bytes, bytes.size()));
  }

  const auto header_span = bytes.subspan(8, header_bytes);
  const nlohmann::json header =
      ParseBoundedJson(std::string_view(reinterpret_cast<const char*>(header_span.data()), header_span.size()),
                       file + ": header", {input_limits::kMaxSafetensorsHeaderBytes, input_limits::kMaxJsonDepth});
  if (!header.is_object()) throw Error(fmt::format("{}: header is a JSON {}, not an object", file, header.type_name()));

  const auto data = bytes.subspan(8 + header_bytes);
  std::vector<ParsedTensor> parsed;
  out.metadata_ = nlohmann::json::object();
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      // The format defines it as string -> string (the reference implementation refuses anything
      // else); holding to that also keeps a hostile deep nesting out of the recursive json copy.
      const bool strings = entry.is_object() && std::all_of(entry.begin(), entry.end(),
                                                            [](const nlohmann::json& v) { return v.is_string(); });
      if (!strings) throw Error(fmt::format("{}: __metadata__ is not an object of strings", file));
      out.metadata_ = entry;
      continue;
    }
    parsed.push_back(ParseTensor(file, name, entry, data));
  }
  CheckNoOverlap(file, parsed);

  for (auto& t : parsed) out.tensors_.push_back(std::move(t.view));
  std::sort(out.tensors_.begin(), out.tensors_.end(),
            [](const TensorView& a, const TensorView& b) { return a.name < b.name; });
  return out;
}

const TensorView* SafetensorsFile::Find(std::string_view name) const {
  const auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                                   [](const TensorView& t, std::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

SafetensorsModel::SafetensorsModel(const std::filesystem::path& folder) : folder_(folder) {
  const auto index_path = folder / "model.safetensors.index.json";
  const auto single_path = folder / "model.safetensors";
  std::error_code error;
  if (std::filesystem::exists(index_path, error)) {
    const std::string index_name = index_path.string();
    const nlohmann::json index =
        ReadJsonFile(index_path, {input_limits::kMaxSafetensorsIndexBytes, input_limits::kMaxJsonDepth});
    const auto weight_map = index.is_object() ? index.find("weight_map") : index.end();
    if (!index.is_object() || weight_map == index.end() || !weight_map->is_object() || weight_map->empty()) {
      throw Error(fmt::format("{}: needs a non-empty \"weight_map\" object of tensor name -> shard file", index_name));
    }
    // Every shard is opened once, all before any view into one is kept: files_ never reallocates under them.
    std::map<std::string, size_t, std::less<>> shard_of_name;
    for (const auto& [name, shard] : weight_map->items()) {
      if (!shard.is_string()) {
        throw Error(
            fmt::format("{}: tensor '{}': shard is a JSON {}, not a file name", index_name, name, shard.type_name()));
      }
      const auto& shard_name = shard.get_ref<const std::string&>();
      if (!IsPlainFileName(shard_name)) {
        throw Error(fmt::format("{}: tensor '{}': shard '{}' is not a plain file name inside the folder", index_name,
                                name, shard_name));
      }
      shard_of_name.try_emplace(shard_name, 0);
    }
    files_.reserve(shard_of_name.size());
    for (auto& [shard_name, i] : shard_of_name) {
      i = files_.size();
      files_.push_back(SafetensorsFile::Open(folder / shard_name));
    }

    // The index decides which tensors make the model; one a shard holds but the index omits is ignored.
    for (const auto& [name, shard] : weight_map->items()) {
      const auto& shard_name = shard.get_ref<const std::string&>();
      const TensorView* view = files_[shard_of_name.find(shard_name)->second].Find(name);
      if (view == nullptr) {
        throw Error(fmt::format("{}: tensor '{}' is listed in {} but that file does not hold it", index_name, name,
                                shard_name));
      }
      tensors_.emplace(name, view);
    }
  } else if (std::filesystem::exists(single_path, error)) {
    files_.push_back(SafetensorsFile::Open(single_path));
    for (const TensorView& t : files_.front().tensors()) tensors_.emplace(t.name, &t);
  } else {
    throw Error(fmt::format("{}: has neither model.safetensors nor model.safetensors.index.json", folder.string()));
  }
}

const TensorView& SafetensorsModel::Get(std::string_view name) const {
  if (const TensorView* t = Find(name)) return *t;
  throw Error(fmt::format("missing tensor {} in {}", name, folder_.string()));
}

const TensorView* SafetensorsModel::Find(std::string_view name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second;
}

std::vector<std::string> SafetensorsModel::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, view] : tensors_) out.push_back(name);
  return out;
}

uint64_t SafetensorsModel::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, view] : tensors_) total += view->data.size();
  return total;
}

}  // namespace qvk
