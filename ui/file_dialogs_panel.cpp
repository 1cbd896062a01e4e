// Small modal dialogs: rename a conversation, export it (Markdown or JSON) to a path, import a
// JSON export, export and import benchmark runs, and the model file picker (Settings, the welcome
// and File > Open model... open it).
#include <imgui.h>
#include <imgui_stdlib.h>

#include "ui/actions.h"
#include "ui/panels.h"

namespace qvk::ui {
namespace {

// A modal with one text field and OK/Cancel; returns true when OK is pressed (or Enter).
bool TextModal(AppState& state, const char* title, const char* prompt, const char* ok_label, std::string& text) {
  if (!ImGui::IsPopupOpen(title)) ImGui::OpenPopup(title);
  bool ok = false;
  ImGui::SetNextWindowSize(ImVec2(560, 0), ImGuiCond_Appearing);
  if (ImGui::BeginPopupModal(title, nullptr, ImGuiWindowFlags_NoResize)) {
    ImGui::TextUnformatted(prompt);
    if (ImGui::IsWindowAppearing()) ImGui::SetKeyboardFocusHere();
    ImGui::SetNextItemWidth(-1);
    ok = ImGui::InputText("##text", &text, ImGuiInputTextFlags_EnterReturnsTrue);
    if (state.dialog == Dialog::Export) {
      bool json = state.export_json;
      if (ImGui::RadioButton("Markdown", !json)) json = false;
      ImGui::SameLine();
      if (ImGui::RadioButton("JSON (the whole tree, re-importable)", json)) json = true;
      if (json != state.export_json) {
        state.export_json = json;
        state.dialog_text = DefaultExportPath(state, json).string();
      }
    }
    ok = ImGui::Button(ok_label) || ok;
    ImGui::SameLine();
    if (ImGui::Button("Cancel")) state.dialog = Dialog::None;
    if (ok || state.dialog == Dialog::None) ImGui::CloseCurrentPopup();
    ImGui::EndPopup();
  }
  return ok;
}

}  // namespace

void DrawFileDialogs(AppState& state) {
  switch (state.dialog) {
    case Dialog::Rename:
      if (TextModal(state, "Rename conversation", "Title", "Rename", state.dialog_text)) {
        RenameConversation(state, state.conversation, state.dialog_text);
        state.dialog = Dialog::None;
      }
      break;
    case Dialog::Export:
      if (TextModal(state, "Export conversation", "Save to", "Export", state.dialog_text)) {
        ExportConversation(state, state.dialog_text, state.export_json);
        state.dialog = Dialog::None;
      }
      break;
    case Dialog::Import:
      if (TextModal(state, "Import conversation", "JSON file exported by QwenVK", "Import", state.dialog_text)) {
        ImportConversation(state, state.dialog_text);
        state.dialog = Dialog::None;
      }
      break;
    case Dialog::BenchImport:
      if (TextModal(state, "Import benchmark runs", "A qwenvk-bench file, or llama-bench's JSON (-o json)", "Import",
                    state.bench.file)) {
        ImportBenchRuns(state, state.bench.file);
        state.dialog = Dialog::None;
      }
      break;
    case Dialog::BenchExport:
      if (TextModal(state, "Export benchmark runs", "Save the runs (qwenvk-bench JSON) to", "Export",
                    state.bench.file)) {
        ExportBenchRuns(state, state.bench.file);
        state.dialog = Dialog::None;
      }
      break;
    case Dialog::ModelPicker:
      if (const auto chosen = state.model_picker.Draw()) {
        OpenChosenModel(state, *chosen);
      } else if (!state.model_picker.is_open()) {
        CancelModelPicker(state);
      }
      break;
    default:
      break;
  }
}

}  // namespace qvk::ui
