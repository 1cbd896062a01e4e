#pragma once
// The error every layer throws for a recoverable failure, with a message meant for the user
// (a bad setting, a malformed file, an unsupported device). The GPU layer adds VulkanError and
// VK_CHECK in gpu/error.h; everything that parses files or stores data needs only this.
#include <stdexcept>

namespace qvk {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace qvk
