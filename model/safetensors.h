#pragma once
// Safetensors files and Hugging Face model folders, mapped and validated before any byte of
// tensor data is trusted: a corrupt, truncated or hostile file is an Error naming the file and
// the tensor, never a crash or a read outside the mapping.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/dtype.h"
#include "model/mapped_file.h"

namespace qvk {

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<uint64_t> shape;
  std::span<const std::byte> data;  // inside the mapping; valid while the owning file lives
  std::string file;                 // for messages
  uint64_t elements() const;
};

class SafetensorsFile {
 public:
  // Throws Error naming the file (and the tensor) when anything in it is inconsistent.
  static SafetensorsFile Open(const std::filesystem::path& path);

  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* Find(std::string_view name) const;
  const nlohmann::json& metadata() const { return metadata_; }  // "__metadata__" or an empty object

 private:
  explicit SafetensorsFile(MappedFile file) : file_(std::move(file)) {}

  MappedFile file_;
  std::vector<TensorView> tensors_;  // sorted by name
  nlohmann::json metadata_;
};

// A Hugging Face folder: model.safetensors, or the shards model.safetensors.index.json lists.
class SafetensorsModel {
 public:
  explicit SafetensorsModel(const std::filesystem::path& folder);

  const TensorView& Get(std::string_view name) const;  // throws Error "missing tensor NAME in FOLDER"
  const TensorView* Find(std::string_view name) const;
  std::vector<std::string> names() const;  // sorted
  uint64_t total_bytes() const;

 private:
  std::filesystem::path folder_;
  std::vector<SafetensorsFile> files_;
  // Views into files_, which is complete before the first is taken; moving the model moves no file.
  std::map<std::string, const TensorView*, std::less<>> tensors_;
};

}  // namespace qvk
