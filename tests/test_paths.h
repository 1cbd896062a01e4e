#pragma once
// Where the test data and the qwenvk binary are: compiled in, and overridable through the
// environment variables of the same names, so a built suite can run from another checkout
// (as on a remote GPU machine).
#include <cstdlib>
#include <filesystem>

namespace qvk::test {

inline std::filesystem::path TestDataDir() {
  const char* dir = std::getenv("QWENVK_TEST_DATA");
  return dir != nullptr && *dir != '\0' ? std::filesystem::path(dir) : std::filesystem::path(QWENVK_TEST_DATA);
}

inline std::filesystem::path QwenvkBinary() {
  const char* path = std::getenv("QWENVK_BINARY");
  return path != nullptr && *path != '\0' ? std::filesystem::path(path) : std::filesystem::path(QWENVK_BINARY);
}

}  // namespace qvk::test
