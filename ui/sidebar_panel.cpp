// The sidebar: a new-chat button, full-text search, the conversations (pinned first, then newest),
// each with a menu to rename, pin or delete, and an undo line after a delete.
#include <imgui.h>
#include <imgui_stdlib.h>

#include "ui/actions.h"
#include "ui/panels.h"

namespace qvk::ui {
namespace {

const char* DisplayTitle(const std::string& title) {
  return title.empty() ? "New chat" : title.c_str();
}

void DrawConversationMenu(AppState& state, const store::Conversation& c) {
  if (!ImGui::BeginPopupContextItem()) return;
  if (ImGui::MenuItem("Rename...")) {
    SelectConversation(state, c.id);
    state.dialog_text = c.title;
    state.dialog = Dialog::Rename;
  }
  if (ImGui::MenuItem(c.pinned ? "Unpin" : "Pin")) TogglePinned(state, c.id);
  if (ImGui::MenuItem("Delete")) DeleteConversation(state, c.id);
  ImGui::EndPopup();
}

void DrawList(AppState& state) {
  for (const store::Conversation& c : state.db().ListConversations()) {
    ImGui::PushID(static_cast<int>(c.id));
    const std::string label = (c.pinned ? "* " : "") + std::string(DisplayTitle(c.title));
    state.glyphs.Note(label, state.fonts.regular);
    if (ImGui::Selectable(label.c_str(), state.conversation == c.id)) SelectConversation(state, c.id);
    DrawConversationMenu(state, c);
    ImGui::PopID();
  }
}

void DrawSearchResults(AppState& state) {
  const auto hits = state.db().Search(state.search);
  if (hits.empty()) ImGui::TextDisabled("No matches");
  int index = 0;
  for (const store::SearchHit& hit : hits) {
    ImGui::PushID(index++);
    if (ImGui::Selectable(DisplayTitle(hit.title), state.conversation == hit.conversation_id)) {
      SelectConversation(state, hit.conversation_id);
      // A hit inside an older branch shows that branch.
      if (hit.message_id != 0) {
        try {
          state.db().SetCurrentLeaf(hit.conversation_id, state.db().NewestLeafUnder(hit.message_id));
        } catch (const Error& e) {
          state.ShowError(e.what());
        }
      }
    }
    state.glyphs.Note(hit.title, state.fonts.regular);
    state.glyphs.Note(hit.snippet, state.fonts.regular);
    if (!hit.snippet.empty()) {
      ImGui::PushTextWrapPos(0.0f);
      ImGui::TextDisabled("%s", hit.snippet.c_str());
      ImGui::PopTextWrapPos();
    }
    ImGui::PopID();
  }
}

}  // namespace

void DrawSidebar(AppState& state) {
  if (ImGui::Button("New chat", ImVec2(-1, 0))) NewConversation(state);
  if (state.focus_search) {
    ImGui::SetKeyboardFocusHere();
    state.focus_search = false;
  }
  ImGui::SetNextItemWidth(-1);
  ImGui::InputTextWithHint("##search", "Search (Ctrl+F)", &state.search);
  state.glyphs.Note(state.search, state.fonts.regular);
  if (state.undo) {
    ImGui::TextWrapped("Deleted \"%s\".", DisplayTitle(state.undo->title));
    ImGui::SameLine();
    if (ImGui::SmallButton("Undo")) UndoDelete(state);
  }
  ImGui::Separator();
  ImGui::BeginChild("conversations");
  if (state.search.empty())
    DrawList(state);
  else
    DrawSearchResults(state);
  ImGui::EndChild();
}

}  // namespace qvk::ui
