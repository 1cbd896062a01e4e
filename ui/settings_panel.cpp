// App settings: the model (a Hugging Face folder or a .gguf, chosen in the file picker), the
// device (every Vulkan device, and why any is unusable), context length and GPU memory budget,
// and the engine new conversations use (this computer, or an OpenAI-compatible server).
// The form is written to the store only on Apply, which reloads the model when it changed.
#include <fmt/format.h>
#include <imgui.h>
#include <imgui_stdlib.h>

#include "gpu/device.h"
#include "ui/actions.h"
#include "ui/panels.h"
#include "ui/window.h"

namespace qvk::ui {
namespace {

void DrawDeviceChoice(AppState& state) {
  SettingsForm& form = state.settings_form;
  const auto& devices = state.window.devices();
  const std::string current = form.device < 0 ? std::string("Automatic")
                              : static_cast<size_t>(form.device) < devices.size()
                                  ? fmt::format("{}: {}", form.device, devices[static_cast<size_t>(form.device)].name)
                                  : fmt::format("{}: (not present)", form.device);
  if (ImGui::BeginCombo("Device", current.c_str())) {
    if (ImGui::Selectable("Automatic", form.device < 0)) form.device = -1;
    for (const DeviceInfo& d : devices) {
      const std::string label = fmt::format("{}: {} ({})", d.index, d.name, d.TypeName());
      if (!d.usable()) {
        ImGui::TextDisabled("%s - unusable: %s", label.c_str(), d.unusable_reason.c_str());
        continue;
      }
      if (ImGui::Selectable(label.c_str(), form.device == static_cast<int>(d.index))) {
        form.device = static_cast<int>(d.index);
      }
    }
    ImGui::EndCombo();
  }
  const DeviceInfo& running = state.window.device().info();
  ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
  ImGui::TextWrapped("Running on %s (%s). A device change applies at the next start.", running.name.c_str(),
                     running.TypeName().c_str());
  ImGui::PopStyleColor();
  if (running.type == VK_PHYSICAL_DEVICE_TYPE_CPU) {
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(0.95f, 0.75f, 0.3f, 1.0f));
    ImGui::TextWrapped("This is a CPU device: no usable GPU was found or one was chosen. Replies will be slow.");
    ImGui::PopStyleColor();
  }
}

void DrawEngines(AppState& state) {
  SettingsForm& form = state.settings_form;
  ImGui::TextUnformatted("Engines");
  int engine = form.remote ? 1 : 0;
  ImGui::RadioButton("This computer", &engine, 0);
  ImGui::SameLine();
  ImGui::RadioButton("A remote server (OpenAI-compatible)", &engine, 1);
  form.remote = engine == 1;
  if (!form.remote) return;
  ImGui::InputText("Base URL", &form.base_url);
  ImGui::TextDisabled("e.g. http://gpu-box:8000/v1 (vLLM) or http://host:8080/v1 (qwenvk serve).");
  ImGui::InputText("API key", &form.api_key, ImGuiInputTextFlags_Password);
  const std::string shown = form.remote_model.empty() ? std::string("(List models first)") : form.remote_model;
  if (ImGui::BeginCombo("Model", shown.c_str())) {
    for (const std::string& id : form.remote_models) {
      if (ImGui::Selectable(id.c_str(), id == form.remote_model)) form.remote_model = id;
    }
    ImGui::EndCombo();
  }
  ImGui::SameLine();
  if (ImGui::Button("List models")) RefreshRemoteModels(state);
  ImGui::TextDisabled("New conversations use this server; each conversation keeps the engine it started with.");
}

}  // namespace

void DrawSettings(AppState& state) {
  if (!state.settings_form.loaded) LoadSettingsForm(state);
  SettingsForm& form = state.settings_form;
  bool open = true;
  ImGui::SetNextWindowSize(ImVec2(640, 0), ImGuiCond_Appearing);
  if (!ImGui::Begin("Settings", &open, ImGuiWindowFlags_NoCollapse)) {
    ImGui::End();
    return;
  }
  ImGui::InputText("Model", &form.model_path);
  ImGui::SameLine();
  if (ImGui::Button("Browse...")) OpenModelPicker(state, Dialog::Settings);
  ImGui::TextDisabled(
      "A Hugging Face folder (config.json, tokenizer.json, *.safetensors) or a .gguf file; empty: the bundled demo.");
  ImGui::InputInt("Context length", &form.context, 256, 4096);
  ImGui::TextDisabled("Tokens the KV cache holds; 0: min(32768, the model's).");
  ImGui::InputInt("GPU memory (MiB)", &form.gpu_mem_mib, 256, 4096);
  ImGui::TextDisabled("0: all the device has. Layers that do not fit stay in host memory (slower, same results).");
  DrawDeviceChoice(state);
  ImGui::InputTextWithHint("Split across devices", "e.g. 0,1", &form.split_devices);
  ImGui::InputTextWithHint("Split", "e.g. 3,1", &form.split);
  ImGui::TextDisabled(
      "A model too large for one GPU split by layers across these devices, in order; the same number twice: two on "
      "one GPU. Split: each one's share of the layers; empty: by the memory each has free. Empty devices: the "
      "device above alone.");
  ImGui::Separator();
  DrawEngines(state);
  ImGui::Separator();
  ImGui::TextDisabled("Conversations: %s", state.database_path.string().c_str());
  ImGui::SameLine();
  if (ImGui::SmallButton("Back up")) BackUpDatabase(state);
  if (ImGui::Button("Apply")) {
    if (ApplySettings(state)) open = false;
  }
  ImGui::SameLine();
  if (ImGui::Button("Close")) open = false;
  ImGui::End();
  if (!open) {
    state.dialog = Dialog::None;
    form.loaded = false;
  }
}

}  // namespace qvk::ui
