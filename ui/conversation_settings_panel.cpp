// One conversation's system prompt and sampling settings. Edited in a form and saved when an
// edit ends (a slider let go, a text box left), not every frame of a drag: each save changes what
// the context gauge counts.
#include <imgui.h>
#include <imgui_stdlib.h>

#include "ui/panels.h"

namespace qvk::ui {
namespace {

// Draws the fields; returns true when an edit ended with a change worth saving.
bool DrawFields(AppState& state, store::ConversationSettings& s) {
  bool ended = false;
  auto edit_ended = [&] { ended |= ImGui::IsItemDeactivatedAfterEdit(); };
  ImGui::TextUnformatted("System prompt");
  ImGui::InputTextMultiline("##system", &s.system_prompt, ImVec2(-1, ImGui::GetTextLineHeight() * 5));
  edit_ended();
  ImGui::SliderFloat("Temperature", &s.temperature, 0.0f, 2.0f, "%.2f");
  edit_ended();
  int top_k = static_cast<int>(s.top_k);
  if (ImGui::InputInt("Top-k (0: off)", &top_k)) s.top_k = static_cast<uint32_t>(std::clamp(top_k, 0, 1000));
  edit_ended();
  ImGui::SliderFloat("Top-p", &s.top_p, 0.0f, 1.0f, "%.2f");
  edit_ended();
  ImGui::SliderFloat("Min-p", &s.min_p, 0.0f, 1.0f, "%.2f");
  edit_ended();
  ImGui::SliderFloat("Repetition penalty", &s.repetition_penalty, 1.0f, 2.0f, "%.2f");
  edit_ended();
  ended |= ImGui::Checkbox("New random seed each reply", &s.random_seed);
  if (!s.random_seed) {
    int seed = static_cast<int>(s.seed & 0x7fffffff);
    if (ImGui::InputInt("Seed", &seed)) s.seed = static_cast<uint64_t>(std::max(0, seed));
    edit_ended();
  }
  int max_tokens = static_cast<int>(s.max_new_tokens);
  if (ImGui::InputInt("Max new tokens", &max_tokens, 64, 512)) {
    s.max_new_tokens = static_cast<uint32_t>(std::clamp(max_tokens, 1, 1 << 20));
  }
  edit_ended();
  ImGui::TextDisabled("Temperature 0 always takes the most likely token.");
  if (ImGui::Button("Model defaults")) {
    const std::string prompt = s.system_prompt;
    s = state.chat().DefaultSettings();
    s.system_prompt = prompt;
    ended = true;
  }
  return ended;
}

void Save(AppState& state, store::Id conversation, const store::ConversationSettings& settings) {
  try {
    state.db().SetConversationSettings(conversation, settings);
  } catch (const Error& e) {
    state.ShowError(e.what());
  }
}

}  // namespace

void DrawConversationSettings(AppState& state) {
  bool open = true;
  ImGui::SetNextWindowSize(ImVec2(560, 0), ImGuiCond_Appearing);
  if (!ImGui::Begin("Conversation settings", &open, ImGuiWindowFlags_NoCollapse)) {
    ImGui::End();
    return;
  }
  const auto conversation = state.conversation != 0 ? state.db().GetConversation(state.conversation) : std::nullopt;
  if (!conversation) {
    ImGui::TextDisabled("Choose a conversation first.");
    state.conversation_form.reset();
  } else {
    if (!state.conversation_form || state.conversation_form->first != conversation->id) {
      state.conversation_form.emplace(conversation->id, conversation->settings);
    }
    store::ConversationSettings& form = state.conversation_form->second;
    if (DrawFields(state, form) && !(form == conversation->settings)) Save(state, conversation->id, form);
  }
  ImGui::SameLine();
  if (ImGui::Button("Close")) open = false;
  ImGui::End();
  if (!open) {
    // An edit still in progress (a text box not left yet) is kept, not dropped.
    if (conversation && state.conversation_form && !(state.conversation_form->second == conversation->settings)) {
      Save(state, conversation->id, state.conversation_form->second);
    }
    state.conversation_form.reset();
    state.dialog = Dialog::None;
  }
}

}  // namespace qvk::ui
