// The sidebar: a new-chat button, full-text search, the conversations (pinned first, then newest),
// each with a menu to rename, pin or delete, and an undo line after a delete.
#include <algorithm>
#include <string>

#include <fmt/format.h>
#include <imgui.h>
#include <imgui_internal.h>
#include <imgui_stdlib.h>

#include "ui/actions.h"
#include "ui/markdown_view.h"
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

// The search runs on the search worker; until its first results for these words arrive the
// sidebar says so, and while the store changes the last results stay up.
void DrawSearchResults(AppState& state) {
  SearchWorker& worker = RequestSearch(state);
  const std::shared_ptr<const SearchWorker::Results> results = worker.ResultsFor(state.search);
  if (!worker.Finished(state.search, state.db().revision())) state.this_frame.awaiting_results = true;
  if (!results) {
    ImGui::TextDisabled("Searching...");
    return;
  }
  if (!results->error.empty()) {
    ImGui::TextWrapped("%s", results->error.c_str());
    return;
  }
  if (results->hits.empty()) ImGui::TextDisabled("No matches");
  int index = 0;
  for (const store::SearchHit& hit : results->hits) {
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
    const std::vector<MdSpan> snippet = MarkedSpans(hit.snippet, store::kMatchStart, store::kMatchEnd);
    for (const MdSpan& span : snippet) state.glyphs.Note(span.text, state.fonts.regular);
    DrawSnippet(snippet, state.fonts);
    ImGui::PopID();
  }
}

// "Deleted "title" [Undo]" on one line: the title gives way (an ellipsis, the whole of it in a
// tooltip), never the button.
void DrawUndoLine(AppState& state) {
  const ImGuiStyle& style = ImGui::GetStyle();
  const char* const undo = "Undo";
  const float button_width = ImGui::CalcTextSize(undo).x + style.FramePadding.x * 2;
  const float text_width = std::max(1.0f, ImGui::GetContentRegionAvail().x - button_width - style.ItemSpacing.x);
  const std::string text = fmt::format("Deleted \"{}\"", DisplayTitle(state.undo->title));
  state.glyphs.Note(text, state.fonts.regular);
  const ImVec2 top_left = ImGui::GetCursorScreenPos();
  const ImVec2 bottom_right(top_left.x + text_width, top_left.y + ImGui::GetTextLineHeight());
  ImGui::RenderTextEllipsis(ImGui::GetWindowDrawList(), top_left, bottom_right, bottom_right.x, bottom_right.x,
                            text.data(), text.data() + text.size(), nullptr);
  ImGui::Dummy(ImVec2(text_width, ImGui::GetTextLineHeight()));
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s", text.c_str());
  ImGui::SameLine();
  if (ImGui::SmallButton(undo)) UndoDelete(state);
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
  if (state.undo) DrawUndoLine(state);
  ImGui::Separator();
  ImGui::BeginChild("conversations");
  if (state.search.empty())
    DrawList(state);
  else
    DrawSearchResults(state);
  ImGui::EndChild();
}

}  // namespace qvk::ui
