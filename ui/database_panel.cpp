// Shown instead of the chat when the conversation database cannot be opened: says why, and
// offers the ways out that lose nothing (read-only, move aside and start fresh, integrity report).
#include <imgui.h>

#include "store/store.h"
#include "ui/actions.h"
#include "ui/panels.h"

namespace qvk::ui {

void DrawDatabaseProblem(AppState& state) {
  // A copy: a way out that succeeds clears state.database_problem in the middle of this panel.
  const DatabaseProblem problem = *state.database_problem;
  ImGui::PushFont(state.fonts.bold);
  ImGui::TextUnformatted("Your conversations could not be opened");
  ImGui::PopFont();
  ImGui::TextWrapped("%s", problem.message.c_str());
  ImGui::Spacing();
  const bool locked = problem.kind == store::StoreErrorKind::Locked;
  // The message already names the other QwenVK and the ways out; the buttons offer them.
  if (locked) {
    if (ImGui::Button("Retry")) OpenDatabase(state, false);
    ImGui::SameLine();
  }
  if (ImGui::Button("Open read-only")) OpenDatabase(state, true);
  if (!locked) {
    ImGui::SameLine();
    if (ImGui::Button("Check integrity")) CheckDatabaseIntegrity(state);
    ImGui::SameLine();
    if (ImGui::Button("Make a copy")) CopyDatabaseFile(state);
    ImGui::SameLine();
    if (ImGui::Button("Keep it aside and start a new database")) MoveDatabaseAsideAndStartFresh(state);
  }
  ImGui::SameLine();
  if (ImGui::Button("Quit")) state.quit = true;
  if (!problem.integrity_report.empty()) {
    ImGui::Separator();
    ImGui::BeginChild("report", ImVec2(0, 0), true);
    ImGui::PushTextWrapPos(0.0f);
    ImGui::TextUnformatted(problem.integrity_report.c_str());
    ImGui::PopTextWrapPos();
    ImGui::EndChild();
  }
}

}  // namespace qvk::ui
