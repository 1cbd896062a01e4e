// The app's frame: a full-window host with the menu bar, the error/notice banner, the sidebar, the
// chat and a message's attention (when open) side by side or the benchmark workbench over the
// whole width, the open dialog, and the keyboard shortcuts (Ctrl+N, Ctrl+F, Ctrl+B, Ctrl+T, Esc,
// Alt+arrows for the attention panel's chosen token).
#include <imgui.h>
#include <imgui_internal.h>

#include "ui/actions.h"
#include "ui/panels.h"
#include "ui/window.h"

namespace qvk::ui {
namespace {

void HandleShortcuts(AppState& state) {
  ImGuiIO& io = ImGui::GetIO();
  // GLFW key codes, which ImGui 1.86's GLFW backend uses as key indices, are ASCII for letters.
  if (io.KeyCtrl && ImGui::IsKeyPressed('N', false)) NewConversation(state);
  if (io.KeyCtrl && ImGui::IsKeyPressed('F', false)) state.focus_search = true;
  if (io.KeyCtrl && ImGui::IsKeyPressed('B', false)) OpenBenchmark(state, !state.bench.open);
  if (io.KeyCtrl && ImGui::IsKeyPressed('T', false)) ToggleThinking(state);
  if (state.chat().generating() && ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape), false)) {
    StopGeneration(state);
  }
  // The token chosen in the text: Alt+Left/Right the one before or after, Alt+Up what it attends
  // to, Alt+Down what attends to it.
  if (io.KeyAlt && state.attention.token) {
    if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_LeftArrow))) MoveAttentionToken(state, -1);
    if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_RightArrow))) MoveAttentionToken(state, 1);
    if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_UpArrow), false))
      SelectAttentionToken(state, state.attention.token, TokenDirection::AttendsTo);
    if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_DownArrow), false))
      SelectAttentionToken(state, state.attention.token, TokenDirection::AttendedBy);
  }
}

void DrawMenuBar(AppState& state) {
  if (!ImGui::BeginMenuBar()) return;
  if (ImGui::BeginMenu("File")) {
    if (ImGui::MenuItem("New chat", "Ctrl+N")) NewConversation(state);
    if (ImGui::MenuItem("Open model...")) OpenModelPicker(state, Dialog::None);
    if (ImGui::MenuItem("Import JSON...")) {
      state.dialog_text.clear();
      state.dialog = Dialog::Import;
    }
    if (ImGui::MenuItem("Export...", nullptr, false, state.conversation != 0)) {
      state.dialog_text = DefaultExportPath(state, state.export_json).string();
      state.dialog = Dialog::Export;
    }
    ImGui::Separator();
    if (ImGui::MenuItem("Settings...")) state.dialog = Dialog::Settings;
    if (ImGui::MenuItem("Quit")) state.quit = true;
    ImGui::EndMenu();
  }
  if (ImGui::BeginMenu("Conversation", state.conversation != 0)) {
    if (ImGui::MenuItem("Settings and system prompt...")) state.dialog = Dialog::ConversationSettings;
    if (ImGui::MenuItem("Rename...")) {
      const auto c = state.db().GetConversation(state.conversation);
      state.dialog_text = c ? c->title : "";
      state.dialog = Dialog::Rename;
    }
    const std::optional<bool> thinking = state.branch.info && state.branch.conversation == state.conversation
                                             ? state.chat().Thinking(*state.branch.info)
                                             : std::nullopt;
    if (ImGui::MenuItem("Thinking", "Ctrl+T", thinking.value_or(false), thinking.has_value())) ToggleThinking(state);
    if (ImGui::MenuItem("Pin / unpin")) TogglePinned(state, state.conversation);
    if (ImGui::MenuItem("Delete")) DeleteConversation(state, state.conversation);
    ImGui::EndMenu();
  }
  if (ImGui::BeginMenu("Benchmark")) {
    if (ImGui::MenuItem("Benchmark workbench", "Ctrl+B", state.bench.open)) OpenBenchmark(state, !state.bench.open);
    if (ImGui::MenuItem("Import benchmark runs...")) {
      OpenBenchmark(state, true);
      state.bench.file.clear();
      state.dialog = Dialog::BenchImport;
    }
    ImGui::EndMenu();
  }
  if (ImGui::BeginMenu("Help")) {
    if (ImGui::MenuItem("Welcome")) state.dialog = Dialog::Welcome;
    ImGui::EndMenu();
  }
  if (state.store->read_only()) ImGui::TextColored(ImVec4(0.95f, 0.75f, 0.3f, 1.0f), "  read-only database");
  ImGui::EndMenuBar();
}

// Errors on red, successes on green, each named in words too (colour alone is not enough).
void DrawBanner(AppState& state) {
  if (state.banner.text.empty()) return;
  const bool error = state.banner.kind == Banner::Kind::Error;
  ImGui::PushStyleColor(ImGuiCol_ChildBg,
                        error ? ImVec4(0.45f, 0.13f, 0.13f, 1.0f) : ImVec4(0.12f, 0.32f, 0.17f, 1.0f));
  ImGui::PushStyleColor(ImGuiCol_Border, error ? ImVec4(0.85f, 0.3f, 0.3f, 1.0f) : ImVec4(0.35f, 0.75f, 0.4f, 1.0f));
  const float height = ImGui::GetFrameHeightWithSpacing() + ImGui::GetStyle().WindowPadding.y;
  ImGui::BeginChild("banner", ImVec2(0, height), true);
  if (ImGui::SmallButton("x")) state.banner.text.clear();
  ImGui::SameLine();
  ImGui::PushFont(state.fonts.bold);
  ImGui::TextUnformatted(error ? "Error:" : "Done:");
  ImGui::PopFont();
  ImGui::SameLine();
  ImGui::TextUnformatted(state.banner.text.c_str());
  ImGui::EndChild();
  ImGui::PopStyleColor(2);
}

void DrawDialogs(AppState& state) {
  switch (state.dialog) {
    case Dialog::Settings:
      DrawSettings(state);
      break;
    case Dialog::ConversationSettings:
      DrawConversationSettings(state);
      break;
    case Dialog::Welcome:
      DrawWelcome(state);
      break;
    case Dialog::None:
      break;
    default:
      DrawFileDialogs(state);
      break;
  }
}

}  // namespace

namespace {

// Ends every window, child and popup opened since the stack was `depth` deep, as the code that
// threw would have.
void UnwindWindows(int depth) {
  ImGuiContext& g = *ImGui::GetCurrentContext();
  while (g.CurrentWindowStack.Size > depth) {
    ImGui::ErrorCheckEndWindowRecover(nullptr);
    const ImGuiWindowFlags flags = ImGui::GetCurrentWindow()->Flags;
    if (flags & ImGuiWindowFlags_Popup)
      ImGui::EndPopup();
    else if (flags & ImGuiWindowFlags_ChildWindow)
      ImGui::EndChild();
    else
      ImGui::End();
  }
}

// The sidebar, the chat and (when open) a message's attention, side by side.
void DrawChatArea(AppState& state) {
  const float sidebar_width = 260.0f * state.window.content_scale();
  ImGui::BeginChild("sidebar", ImVec2(sidebar_width, 0), true);
  DrawSidebar(state);
  ImGui::EndChild();
  ImGui::SameLine();
  const bool attention = state.attention.message != 0;
  const float chat_width = attention ? ImGui::GetContentRegionAvail().x * 0.45f : 0.0f;
  ImGui::BeginChild("chat", ImVec2(chat_width, 0), false);
  DrawChat(state);
  ImGui::EndChild();
  if (attention) {
    ImGui::SameLine();
    ImGui::BeginChild("attention", ImVec2(0, 0), true);
    DrawAttention(state);
    ImGui::EndChild();
  }
}

void DrawMain(AppState& state) {
  const ImGuiViewport* viewport = ImGui::GetMainViewport();
  ImGui::SetNextWindowPos(viewport->WorkPos);
  ImGui::SetNextWindowSize(viewport->WorkSize);
  const ImGuiWindowFlags host = ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove |
                                ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoBringToFrontOnFocus |
                                ImGuiWindowFlags_MenuBar;
  ImGui::Begin("QwenVK", nullptr, host);
  if (state.database_problem) {
    DrawDatabaseProblem(state);
  } else if (state.session) {  // made by the frame loop once the store is open
    HandleShortcuts(state);
    DrawMenuBar(state);
    DrawBanner(state);
    if (state.bench.open) {
      ImGui::BeginChild("benchmark", ImVec2(0, 0), false);
      DrawBenchmark(state);
      ImGui::EndChild();
    } else {
      DrawChatArea(state);
    }
  }
  ImGui::End();
  if (state.session) DrawDialogs(state);
}

}  // namespace

void DrawApp(AppState& state) {
  const int depth = ImGui::GetCurrentContext()->CurrentWindowStack.Size;
  try {
    DrawMain(state);
  } catch (const std::exception& e) {
    // A store read failed mid-frame (disk gone, database damaged while open), or a file system
    // call did: say so and unwind ImGui's stacks rather than crash; nothing is lost, and the next
    // frame tries again.
    state.ShowError(e.what());
    UnwindWindows(depth);
  }
}

}  // namespace qvk::ui
