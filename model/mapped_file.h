#pragma once
// A whole file mapped read-only. Weights are read straight from the mapping: nothing is copied
// until the upload, and the page cache is shared between runs.
#include <cstddef>
#include <filesystem>
#include <span>

#include "base/bounded_json.h"

namespace qvk {

class MappedFile {
 public:
  // Throws Error naming the path and the system's reason.
  static MappedFile Open(const std::filesystem::path& path);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  // Stays at the same address when the MappedFile is moved.
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile(std::filesystem::path path, const std::byte* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  void Unmap() noexcept;

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;  // null for an empty file: mmap refuses length 0
  size_t size_ = 0;
};

// A JSON file of a model (config, tokenizer, index), parsed within `limits` (model/input_limits.h);
// throws Error naming the file and the limit or the parse error.
nlohmann::json ReadJsonFile(const std::filesystem::path& path, const JsonLimits& limits);

}  // namespace qvk
