// One conversation's system prompt and sampling settings, saved as they change.
#include <imgui.h>
#include <imgui_stdlib.h>

#include "ui/panels.h"

namespace qvk::ui {

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
  } else {
    store::ConversationSettings s = conversation->settings;
    ImGui::TextUnformatted("System prompt");
    ImGui::InputTextMultiline("##system", &s.system_prompt, ImVec2(-1, ImGui::GetTextLineHeight() * 5));
    ImGui::SliderFloat("Temperature", &s.temperature, 0.0f, 2.0f, "%.2f");
    int top_k = static_cast<int>(s.top_k);
    if (ImGui::InputInt("Top-k (0: off)", &top_k)) s.top_k = static_cast<uint32_t>(std::clamp(top_k, 0, 1000));
    ImGui::SliderFloat("Top-p", &s.top_p, 0.0f, 1.0f, "%.2f");
    ImGui::SliderFloat("Min-p", &s.min_p, 0.0f, 1.0f, "%.2f");
    ImGui::SliderFloat("Repetition penalty", &s.repetition_penalty, 1.0f, 2.0f, "%.2f");
    ImGui::Checkbox("New random seed each reply", &s.random_seed);
    if (!s.random_seed) {
      int seed = static_cast<int>(s.seed & 0x7fffffff);
      if (ImGui::InputInt("Seed", &seed)) s.seed = static_cast<uint64_t>(std::max(0, seed));
    }
    int max_tokens = static_cast<int>(s.max_new_tokens);
    if (ImGui::InputInt("Max new tokens", &max_tokens, 64, 512)) {
      s.max_new_tokens = static_cast<uint32_t>(std::clamp(max_tokens, 1, 1 << 20));
    }
    ImGui::TextDisabled("Temperature 0 always takes the most likely token.");
    if (ImGui::Button("Model defaults")) {
      const std::string prompt = s.system_prompt;
      s = state.chat().DefaultSettings();
      s.system_prompt = prompt;
    }
    if (!(s == conversation->settings)) {
      try {
        state.db().SetConversationSettings(conversation->id, s);
      } catch (const Error& e) {
        state.banner = e.what();
      }
    }
  }
  ImGui::SameLine();
  if (ImGui::Button("Close")) open = false;
  ImGui::End();
  if (!open) state.dialog = Dialog::None;
}

}  // namespace qvk::ui
