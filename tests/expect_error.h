#pragma once
// Checking the words of an Error, for every test binary: test_util.h includes it, and a binary
// that needs nothing else of test_util.h (no fixture data, no qwenvk binary) includes it alone.
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/error.h"

namespace qvk::test {

// The message of the Error `f` throws, or a marker that fails every substring check.
inline std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error thrown)";
}

inline void ExpectMentions(const std::string& message, const std::vector<std::string>& parts) {
  for (const auto& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
  }
}

}  // namespace qvk::test
