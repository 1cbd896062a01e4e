// The welcome: at the first start, over the bundled demo model it opens, says what that model
// can do (define words, give synonyms, use words in sentences, nothing else) and how to open a
// real one; Help > Welcome shows it again.
#include <algorithm>
#include <span>
#include <utility>

#include <imgui.h>

#include "ui/actions.h"
#include "ui/panels.h"

namespace qvk::ui {
namespace {

// What the demo model was trained to answer, one example each, as a user would type it.
constexpr std::pair<const char*, const char*> kSkills[] = {
    {"define a word", "What does harbor mean?"},
    {"give a synonym", "Give a synonym of happy."},
    {"give an opposite", "What is the opposite of cold?"},
    {"name a more general word", "What kind of thing is a violin?"},
    {"use a word in a sentence", "Use harbor in a sentence."},
};

// Where a real model comes from: the kind, and an example of one.
constexpr std::pair<const char*, const char*> kRealModels[] = {
    {"a Hugging Face folder", "Qwen/Qwen2.5-1.5B-Instruct"},
    {"or one .gguf file", "qwen2.5-1.5b-instruct-q4_k_m.gguf"},
};

const ImVec4 kExampleColor(0.55f, 0.8f, 1.0f, 1.0f);

void Heading(AppState& state, const char* text) {
  ImGui::PushFont(state.fonts.bold);
  ImGui::TextUnformatted(text);
  ImGui::PopFont();
}

// Bulleted rows, the second column aligned (one line each: ImGui would wrap a path at its dots).
void Rows(AppState& state, std::span<const std::pair<const char*, const char*>> rows, ImFont* example_font) {
  float label_width = 0;
  for (const auto& [label, example] : rows) label_width = std::max(label_width, ImGui::CalcTextSize(label).x);
  const float column = ImGui::GetCursorPosX() + ImGui::GetTreeNodeToLabelSpacing() + label_width + ImGui::GetFontSize();
  for (const auto& [label, example] : rows) {
    ImGui::BulletText("%s", label);
    ImGui::SameLine(column);
    ImGui::PushFont(example_font ? example_font : state.fonts.regular);
    ImGui::TextColored(kExampleColor, "%s", example);
    ImGui::PopFont();
  }
}

}  // namespace

void DrawWelcome(AppState& state) {
  const float em = ImGui::GetFontSize();
  ImGui::SetNextWindowSize(ImVec2(em * 34, 0), ImGuiCond_Appearing);
  ImGui::SetNextWindowPos(ImGui::GetMainViewport()->GetCenter(), ImGuiCond_Appearing, ImVec2(0.5f, 0.5f));
  ImGui::PushStyleVar(ImGuiStyleVar_WindowPadding, ImVec2(em, em));
  bool open = true;
  const bool drawn =
      ImGui::Begin("Welcome to QwenVK", &open, ImGuiWindowFlags_NoCollapse | ImGuiWindowFlags_NoSavedSettings);
  ImGui::PopStyleVar();
  if (!drawn) {
    ImGui::End();
    return;
  }
  Heading(state, "A tiny demo model is open");
  ImGui::TextWrapped(
      "It is a Qwen2 model of 12.5 million parameters, trained on WordNet, the English dictionary, so that QwenVK "
      "works from the first start, offline. It knows about 19 000 common English words and nothing else. Ask it to");
  Rows(state, kSkills, nullptr);
  ImGui::TextWrapped(
      "Other questions get a polite refusal, and a word it was not taught gets a made-up definition: it is a "
      "demonstration of the app and of attention maps, not an assistant.");
  ImGui::Spacing();
  ImGui::Separator();
  ImGui::Spacing();

  Heading(state, "For a real assistant");
  ImGui::TextWrapped("Download a Qwen2 or Qwen2.5 Instruct model and open it:");
  Rows(state, kRealModels, state.fonts.mono);
  ImGui::Spacing();
  if (ImGui::Button("Open a model...")) OpenModelPicker(state, Dialog::Welcome);
  ImGui::SameLine();
  if (ImGui::Button("Start chatting")) StartChatting(state);
  ImGui::Spacing();
  ImGui::TextDisabled("Later: File > Open model..., and this welcome in Help > Welcome.");
  ImGui::End();
  if (!open) StartChatting(state);  // the title bar's close button
}

}  // namespace qvk::ui
