// The chat: a header with the model's state and the context gauge, the branch on screen (each
// message with its branch arrows, actions and reply figures), the live reply, and the input box.
#include <cstdio>

#include <fmt/format.h>
#include <imgui.h>
#include <imgui_internal.h>
#include <imgui_stdlib.h>

#include "ui/actions.h"
#include "ui/markdown_view.h"
#include "ui/panels.h"
#include "ui/window.h"

namespace qvk::ui {
namespace {

void DrawModelState(AppState& state) {
  chat::ChatSession& chat = state.chat();
  switch (chat.model_status()) {
    case chat::ModelStatus::None:
      ImGui::TextDisabled("No model. Choose one in Settings.");
      ImGui::SameLine();
      if (ImGui::SmallButton("Settings...")) state.dialog = Dialog::Settings;
      break;
    case chat::ModelStatus::Loading: {
      const std::string overlay = fmt::format("Loading {} {:.0f}%", chat.model_name(), 100.0f * chat.load_progress());
      ImGui::ProgressBar(chat.load_progress(), ImVec2(-1, 0), overlay.c_str());
      break;
    }
    case chat::ModelStatus::Failed:
      ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.45f, 0.4f, 1.0f));
      ImGui::TextWrapped("Model failed to load: %s", chat.model_error().c_str());
      ImGui::PopStyleColor();
      break;
    case chat::ModelStatus::Ready: {
      const DeviceInfo& device = state.window.device().info();
      ImGui::TextDisabled("%s on %s", chat.model_name().c_str(), device.name.c_str());
      if (device.type == VK_PHYSICAL_DEVICE_TYPE_CPU) {
        ImGui::SameLine();
        ImGui::TextColored(ImVec4(0.95f, 0.75f, 0.3f, 1.0f), "(a CPU device: slow)");
      }
      break;
    }
  }
}

// Tokens used / context length, always on screen while a model is loaded.
void DrawContextGauge(AppState& state) {
  const uint32_t context = state.chat().context_length();
  if (context == 0 || state.conversation == 0) return;
  const uint32_t used = state.chat().ContextTokens(state.conversation);
  const float fraction = std::min(1.0f, static_cast<float>(used) / static_cast<float>(context));
  const std::string overlay = fmt::format("context {} / {} tokens", used, context);
  if (fraction > 0.9f) ImGui::PushStyleColor(ImGuiCol_PlotHistogram, ImVec4(0.85f, 0.35f, 0.25f, 1.0f));
  ImGui::ProgressBar(fraction, ImVec2(-1, 0), overlay.c_str());
  if (fraction > 0.9f) ImGui::PopStyleColor();
}

// "< 2/3 >" when a message has siblings (edits or regenerations of the same turn).
void DrawBranchArrows(AppState& state, const store::Message& m) {
  const auto siblings = state.db().Siblings(m.conversation_id, m.parent_id);
  if (siblings.size() < 2) return;
  size_t index = 0;
  while (index < siblings.size() && siblings[index].id != m.id) ++index;
  ImGui::SameLine();
  if (ImGui::SmallButton("<")) SwitchBranch(state, m.id, -1);
  ImGui::SameLine();
  ImGui::TextDisabled("%zu/%zu", index + 1, siblings.size());
  ImGui::SameLine();
  if (ImGui::SmallButton(">")) SwitchBranch(state, m.id, +1);
}

void DrawReplyFigures(const store::Message& m) {
  if (m.tokens > 0) {
    ImGui::TextDisabled("%u tokens  |  %.1f tokens/s  |  first token %.2f s", m.tokens, m.tokens_per_s,
                        m.time_to_first_token_s);
  }
  if (!m.notice.empty()) {
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(0.95f, 0.75f, 0.3f, 1.0f));
    ImGui::TextWrapped("%s", m.notice.c_str());
    ImGui::PopStyleColor();
  }
}

void DrawEditor(AppState& state) {
  const float height = ImGui::GetTextLineHeight() * 6;
  ImGui::InputTextMultiline("##edit", &state.edit_text, ImVec2(-1, height));
  if (ImGui::Button("Save and submit")) SubmitEdit(state);
  ImGui::SameLine();
  if (ImGui::Button("Cancel")) state.editing = 0;
}

void DrawMessage(AppState& state, const store::Message& m, const chat::LiveReply& live, bool last) {
  const bool streaming_here = live.active && live.message == m.id;
  const std::string& text = streaming_here ? live.text : m.content;
  state.glyphs.Note(text, state.fonts.regular);
  ImGui::PushID(static_cast<int>(m.id));
  ImGui::PushFont(state.fonts.bold);
  ImGui::TextUnformatted(m.role == "user" ? "You" : m.role == "assistant" ? "Assistant" : "System");
  ImGui::PopFont();
  DrawBranchArrows(state, m);
  if (m.state == store::MessageState::Interrupted && !streaming_here) {
    ImGui::SameLine();
    ImGui::TextColored(ImVec4(0.95f, 0.6f, 0.3f, 1.0f), "(interrupted)");
  }

  if (state.editing == m.id) {
    DrawEditor(state);
  } else {
    DrawMarkdown(text, state.fonts);
  }

  if (m.role == "assistant") {
    if (streaming_here) {
      ImGui::TextDisabled("%u tokens  |  %.1f s", live.tokens, live.seconds);
    } else {
      DrawReplyFigures(m);
    }
  }
  const bool busy = state.chat().generating();
  if (!streaming_here && state.editing != m.id) {
    if (ImGui::SmallButton("Copy")) CopyToClipboard(m.content);
    ImGui::SameLine();
    if (!busy && ImGui::SmallButton("Edit")) {
      state.editing = m.id;
      state.edit_text = m.content;
    }
    if (m.role == "assistant" && !busy) {
      ImGui::SameLine();
      if (ImGui::SmallButton("Regenerate")) Regenerate(state, m.id);
      if (last || m.state == store::MessageState::Interrupted) {
        ImGui::SameLine();
        if (ImGui::SmallButton("Continue")) ContinueReply(state, m.id);
      }
    }
  }
  ImGui::Separator();
  ImGui::PopID();
}

void DrawMessages(AppState& state) {
  const auto conversation = state.db().GetConversation(state.conversation);
  if (!conversation) return;
  const chat::LiveReply live = state.chat().live();
  const bool live_here = live.active && live.conversation == state.conversation;
  const auto thread =
      conversation->current_leaf != 0 ? state.db().Thread(conversation->current_leaf) : std::vector<store::Message>{};
  if (!conversation->settings.system_prompt.empty()) {
    ImGui::TextDisabled("System prompt: %s", conversation->settings.system_prompt.c_str());
    ImGui::Separator();
  }
  // A reply that has not produced its first token yet answers live.parent: the branch on screen
  // ends there (a regenerated reply's predecessor stays in the store, one arrow away).
  size_t shown = thread.size();
  if (live_here && live.message == 0) {
    for (size_t i = 0; i < thread.size(); ++i) {
      if (thread[i].id == live.parent) shown = i + 1;
    }
  }
  for (size_t i = 0; i < shown; ++i) DrawMessage(state, thread[i], live, i + 1 == shown);
  if (live_here && live.message == 0) {
    ImGui::PushFont(state.fonts.bold);
    ImGui::TextUnformatted("Assistant");
    ImGui::PopFont();
    ImGui::TextDisabled("Reading the prompt... %.1f s", live.seconds);
  }
  // Follow a streaming reply unless the user scrolled up to read.
  if (live_here && ImGui::GetScrollY() >= ImGui::GetScrollMaxY() - ImGui::GetTextLineHeight() * 3) {
    ImGui::SetScrollHereY(1.0f);
  }
}

void DrawInput(AppState& state) {
  const float height = ImGui::GetTextLineHeightWithSpacing() * 4;
  const float button_width = ImGui::CalcTextSize("Stop").x * 2.5f;
  if (state.focus_draft) {
    ImGui::SetKeyboardFocusHere();
    state.focus_draft = false;
  }
  // ImGui 1.86 inserts a newline for Ctrl+Enter when CtrlEnterForNewLine is set and returns on a
  // plain Enter; the chat convention is Shift+Enter, so Shift is presented to the widget as Ctrl.
  ImGuiIO& io = ImGui::GetIO();
  // Esc means Stop (main_panel.cpp); ImGui's text box would also take it as "revert to the text
  // it had when focused" and lose the draft. The press is taken away while the box is active.
  const int escape = ImGui::GetKeyIndex(ImGuiKey_Escape);
  if (ImGui::GetActiveID() == ImGui::GetID("##draft") && io.KeysDown[escape]) {
    io.KeysDown[escape] = false;
    io.KeysDownDuration[escape] = -1.0f;
  }
  const bool ctrl = io.KeyCtrl;
  const ImGuiKeyModFlags mods = io.KeyMods;
  const bool enter = ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Enter)) ||
                     ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_KeyPadEnter));
  if (io.KeyShift && enter) {
    io.KeyCtrl = true;
    io.KeyMods |= ImGuiKeyModFlags_Ctrl;  // InputText checks the two agree
  }
  const bool entered = ImGui::InputTextMultiline(
      "##draft", &state.draft, ImVec2(-button_width - ImGui::GetStyle().ItemSpacing.x, height),
      ImGuiInputTextFlags_EnterReturnsTrue | ImGuiInputTextFlags_CtrlEnterForNewLine);
  io.KeyCtrl = ctrl;
  io.KeyMods = mods;
  state.glyphs.Note(state.draft, state.fonts.regular);
  ImGui::SameLine();
  if (state.chat().generating()) {
    if (ImGui::Button("Stop", ImVec2(-1, height))) StopGeneration(state);
  } else if (ImGui::Button("Send", ImVec2(-1, height)) || entered) {
    SendDraft(state);
    state.focus_draft = true;
  }
}

}  // namespace

void DrawChat(AppState& state) {
  DrawModelState(state);
  DrawContextGauge(state);
  const float input_height = ImGui::GetTextLineHeightWithSpacing() * 4 + ImGui::GetStyle().ItemSpacing.y * 2;
  ImGui::BeginChild("messages", ImVec2(0, -input_height), false);
  if (state.conversation != 0) {
    DrawMessages(state);
  } else {
    ImGui::TextDisabled("Start a new chat: type below and press Enter.");
  }
  ImGui::EndChild();
  DrawInput(state);
}

}  // namespace qvk::ui
