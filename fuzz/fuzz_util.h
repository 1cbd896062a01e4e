#pragma once
// What the libFuzzer targets share: running a parser for which an Error is an acceptable outcome,
// and a private folder to put each input in as the file the parser reads.
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "base/error.h"

namespace qvk::fuzz {

// Runs `f`, for which an Error is an acceptable outcome; anything else escapes to libFuzzer.
template <typename F>
void AllowError(const F& f) {
  try {
    f();
  } catch (const Error&) {
  }
}

// A folder of this process's own, made once, reused by every input and removed at exit, so that
// parsers are driven through the same file paths as in the app. It lies on tmpfs when there is
// one: writing each input to a disk-backed /tmp waits milliseconds, twenty times the parsing.
inline const std::filesystem::path& Folder() {
  struct Owned {
    std::filesystem::path path;
    Owned() {
      const std::filesystem::path base =
          std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
      std::string pattern = (base / "qwenvk-fuzz-XXXXXX").string();
      if (::mkdtemp(pattern.data()) == nullptr) __builtin_trap();
      path = pattern;
    }
    Owned(const Owned&) = delete;
    Owned& operator=(const Owned&) = delete;
    ~Owned() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const Owned folder;
  return folder.path;
}

inline std::filesystem::path WriteFile(const std::string& name, const uint8_t* data, size_t size) {
  const std::filesystem::path path = Folder() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

}  // namespace qvk::fuzz
