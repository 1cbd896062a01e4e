#pragma once
// Subcommands of the qwenvk program, one function each; main.cpp wires them to CLI11.
#include <optional>

namespace qvk::app {

struct DevicesOptions {
  bool json = false;
};
int RunDevices(const DevicesOptions& options, std::optional<unsigned> chosen_device);

}  // namespace qvk::app
