#include "model/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/bounded_json.h"
#include "base/error.h"

namespace qvk {
namespace {

[[noreturn]] void ThrowErrno(const std::filesystem::path& path, const char* what, int error) {
  throw Error(fmt::format("{}: {}: {}", path.string(), what, std::strerror(error)));
}

// Closes the descriptor on every path out of Open; the mapping outlives it.
class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {}
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  ~Descriptor() { ::close(fd_); }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

MappedFile MappedFile::Open(const std::filesystem::path& path) {
  // Only a regular file is opened: a FIFO or a device named in a model folder would block open()
  // or read() forever, and a directory would only fail later with a less helpful message. The
  // path is checked before open(), and O_NONBLOCK with a second check on the descriptor covers it
  // being swapped for a FIFO in between.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) ThrowErrno(path, "cannot open", errno);
  if (!S_ISREG(st.st_mode)) throw Error(fmt::format("{}: not a regular file", path.string()));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) ThrowErrno(path, "cannot open", errno);
  Descriptor descriptor(fd);
  if (::fstat(fd, &st) != 0) ThrowErrno(path, "cannot stat", errno);
  if (!S_ISREG(st.st_mode)) throw Error(fmt::format("{}: not a regular file", path.string()));
  const auto size = static_cast<size_t>(st.st_size);
  if (size == 0) return MappedFile(path, nullptr, 0);
  void* data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (data == MAP_FAILED) ThrowErrno(path, "cannot map", errno);
  return MappedFile(path, static_cast<const std::byte*>(data), size);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    Unmap();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() {
  Unmap();
}

void MappedFile::Unmap() noexcept {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

nlohmann::json ReadJsonFile(const std::filesystem::path& path, const JsonLimits& limits) {
  const MappedFile file = MappedFile::Open(path);
  const auto bytes = file.bytes();
  return ParseBoundedJson(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path.string(),
                          limits);
}

}  // namespace qvk
