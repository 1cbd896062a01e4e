// qwenvk: the program. The terminal subcommands are wired here; each lives in its own file.
#include <cstdio>
#include <optional>

#include <CLI/CLI.hpp>
#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "app/commands.h"
#include "gpu/error.h"

int main(int argc, char** argv) {
  // Logs go to stderr so stdout stays machine-readable; SPDLOG_LEVEL=debug for more.
  spdlog::set_default_logger(spdlog::stderr_color_mt("qwenvk"));
  spdlog::set_pattern("[%l] %v");
  spdlog::cfg::load_env_levels();

  CLI::App app{"QwenVK: Qwen2-family language models on any GPU through Vulkan compute"};
  app.require_subcommand(1);
  std::optional<unsigned> device;
  app.add_option("--device", device, "Vulkan device number (see `qwenvk devices`); also QWENVK_DEVICE");

  qvk::app::DevicesOptions devices_options;
  CLI::App* devices = app.add_subcommand("devices", "List every Vulkan device, what it supports, and which is chosen");
  devices->add_flag("--json", devices_options.json, "Print JSON instead of text");

  CLI11_PARSE(app, argc, argv);
  try {
    if (devices->parsed()) return qvk::app::RunDevices(devices_options, device);
  } catch (const qvk::Error& e) {
    std::fprintf(stderr, "qwenvk: %s\n", e.what());
    return 1;
  }
  return 0;
}
