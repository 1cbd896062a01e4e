// Sections: the model, the context gauge and the thinking switch / messages / input
// The chat: a header with the model's state, the context gauge and (for a model that has one) the
// thinking switch, the branch on screen (each message with its branch arrows, actions and reply
// figures; a reply's thinking folded above its answer), the live reply, and the input box.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>
#include <imgui.h>
#include <imgui_internal.h>
#include <imgui_stdlib.h>

#include "ui/actions.h"
#include "ui/markdown_view.h"
#include "ui/panels.h"
#include "ui/thinking.h"
#include "ui/window.h"

namespace qvk::ui {
namespace {

// --- the model, the context gauge and the thinking switch ------------------------------------

// The last load never ended (the program crashed or was killed during it): loading it again at
// every start could make the app unusable, so the user decides.
void DrawUnfinishedLoad(AppState& state) {
  ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(0.95f, 0.75f, 0.3f, 1.0f));
  ImGui::TextWrapped("%s", UnfinishedLoadMessage(*state.unfinished_load).c_str());
  ImGui::PopStyleColor();
  if (ImGui::SmallButton("Retry")) RetryUnfinishedLoad(state);
  ImGui::SameLine();
  if (ImGui::SmallButton("Choose another model")) ChooseAnotherModel(state);
}

void DrawModelState(AppState& state) {
  chat::ChatSession& chat = state.chat();
  switch (chat.model_status()) {
    case chat::ModelStatus::None:
      if (state.unfinished_load) {
        DrawUnfinishedLoad(state);
        break;
      }
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
      const std::vector<std::string> split = chat.model_devices();
      if (split.empty()) {
        ImGui::TextDisabled("%s on %s", chat.model_name().c_str(), device.name.c_str());
      } else {
        std::string where;
        for (const std::string& stage : split) where += (where.empty() ? "" : "; ") + stage;
        // Wrapped: each device's layers and hand-off make a line wider than the window.
        ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
        ImGui::TextWrapped("%s split across %s", chat.model_name().c_str(), where.c_str());
        ImGui::PopStyleColor();
      }
      if (split.empty() && device.type == VK_PHYSICAL_DEVICE_TYPE_CPU) {
        ImGui::SameLine();
        ImGui::TextColored(ImVec4(0.95f, 0.75f, 0.3f, 1.0f), "(a CPU device: slow)");
      }
      break;
    }
  }
}

// The tokens the next prompt takes / the context length, always on screen while a model is
// loaded. Counted off the UI thread (a chat template can take long); until the first count the
// gauge says so.
void DrawContextGauge(AppState& state) {
  if (state.conversation == 0) return;
  const std::optional<store::ConversationEngine> remote =
      state.branch.info && state.branch.info->engine.remote() ? std::optional(state.branch.info->engine) : std::nullopt;
  if (remote) {
    // The server's context length is not part of the API: the count shows alone.
    const std::optional<uint32_t> used = state.chat().CountContextTokensInBackground(state.conversation);
    if (!used) state.this_frame.awaiting_results = true;
    ImGui::TextDisabled(
        "%s at %s  |  %s", remote->model.c_str(), remote->base_url.c_str(),
        used ? fmt::format("context {} tokens{}", *used, state.chat().CountsExactly(*remote) ? "" : " (approximate)")
                   .c_str()
             : "context: counting tokens...");
    return;
  }
  const uint32_t context = state.chat().context_length();
  if (context == 0) return;
  const std::optional<uint32_t> used = state.chat().CountContextTokensInBackground(state.conversation);
  if (!used) state.this_frame.awaiting_results = true;
  const float fraction = std::min(1.0f, static_cast<float>(used.value_or(0)) / static_cast<float>(context));
  if (fraction > 0.9f) ImGui::PushStyleColor(ImGuiCol_PlotHistogram, ImVec4(0.85f, 0.35f, 0.25f, 1.0f));
  ImGui::ProgressBar(fraction, ImVec2(-1, 0), ContextGaugeLabel(used, context).c_str());
  if (fraction > 0.9f) ImGui::PopStyleColor();
}

// The conversation's enable_thinking, where its model has the switch (Qwen3's template); with no
// conversation open, the one the next message starts.
void DrawThinkingSwitch(AppState& state) {
  std::optional<bool> thinking;
  if (state.conversation == 0) {
    thinking = state.chat().Thinking(store::Conversation{});
  } else if (state.branch.info && state.branch.conversation == state.conversation) {
    thinking = state.chat().Thinking(*state.branch.info);
  }
  if (!thinking) return;
  bool on = *thinking;
  if (ImGui::Checkbox("Thinking", &on)) SetThinking(state, on);
  ImGui::SameLine();
  ImGui::TextDisabled(on ? "the model thinks before it answers (Ctrl+T)" : "the model answers at once (Ctrl+T)");
}

// --- messages --------------------------------------------------------------------------------

// A reply's text: its thinking (Qwen3's <think> block) folded under a header the user opens, then
// the answer. While it streams, the header says the thinking goes on.
void DrawReplyText(AppState& state, store::Id message, std::string_view text, MarkdownLayout* layout,
                   MarkdownLayout* thinking_layout) {
  const ReplyThinking parts = SplitThinking(text);
  if (!parts.present) {
    DrawMarkdown(text, state.fonts, nullptr, layout);
    return;
  }
  const bool was_open = state.thinking_open.contains(message);
  ImGui::SetNextItemOpen(was_open, ImGuiCond_Always);
  ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
  const bool open =
      ImGui::TreeNodeEx("##thinking", ImGuiTreeNodeFlags_NoTreePushOnOpen | ImGuiTreeNodeFlags_SpanAvailWidth, "%s",
                        parts.finished ? "Thinking" : "Thinking...");
  if (open != was_open) SetThinkingOpen(state, message, open);
  if (open) {
    ImGui::Indent();
    DrawMarkdown(parts.thinking, state.fonts, nullptr, thinking_layout);
    ImGui::Unindent();
    ImGui::Spacing();
  }
  ImGui::PopStyleColor();
  if (!parts.answer.empty()) DrawMarkdown(parts.answer, state.fonts, nullptr, layout);
}

// "< 2/3 >" when a message has siblings (edits or regenerations of the same turn).
void DrawBranchArrows(AppState& state, const store::Message& m) {
  const auto [position, count] = state.branch.SiblingPosition(m);
  if (count < 2) return;
  ImGui::SameLine();
  if (ImGui::SmallButton("<")) SwitchBranch(state, m.id, -1);
  ImGui::SameLine();
  ImGui::TextDisabled("%zu/%zu", position, count);
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

// `new_text`: the text was not drawn at this size before, so its characters are looked up in the
// font atlas (a megabyte every frame would cost more than the frame).
void DrawMessage(AppState& state, const store::Message& m, const chat::LiveReply& live, bool last, bool new_text) {
  const bool streaming_here = live.active && live.message == m.id;
  const std::string& text = streaming_here ? live.text : m.content;
  if (new_text) state.glyphs.Note(text, state.fonts.regular);
  ImGui::PushID(static_cast<int>(m.id));
  ImGui::PushFont(state.fonts.bold);
  ImGui::TextUnformatted(m.role == "user" ? "You" : m.role == "assistant" ? "Assistant" : "System");
  ImGui::PopFont();
  DrawBranchArrows(state, m);
  if (m.state == store::MessageState::Interrupted && !streaming_here) {
    ImGui::SameLine();
    ImGui::TextColored(ImVec4(0.95f, 0.6f, 0.3f, 1.0f), "(interrupted)");
  }

  const chat::MessageAttention* attention_tokens =
      state.attention.message == m.id ? AttentionTokensOnScreen(state.attention) : nullptr;
  if (state.editing == m.id) {
    DrawEditor(state);
  } else if (attention_tokens && attention_tokens->message == m.id) {
    // Its attention is open: its tokens, to click and to shade.
    DrawAttentionTokens(state, attention_tokens->message_begin, static_cast<uint32_t>(attention_tokens->ids.size()));
  } else if (m.role == "assistant") {
    DrawReplyText(state, m.id, text, &state.branch.layouts[m.id], &state.branch.thinking_layouts[m.id]);
  } else {
    DrawMarkdown(text, state.fonts, nullptr, &state.branch.layouts[m.id]);
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
    if (m.role == "assistant") {
      ImGui::SameLine();
      if (state.branch.info && state.branch.info->engine.remote()) {
        ImGui::TextDisabled("(no attention)");
        if (ImGui::IsItemHovered()) {
          ImGui::SetTooltip("Attention maps need the model's weights, and this conversation's replies come from %s.",
                            state.branch.info->engine.base_url.c_str());
        }
      } else if (ImGui::SmallButton("Attention")) {
        OpenAttention(state, m.id);
      }
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

// A message not drawn yet: its height guessed from its length, until drawing measures it.
float EstimatedHeight(size_t text_bytes, float width) {
  const float chars_per_line = std::max(1.0f, width / (ImGui::GetFontSize() * 0.5f));
  const float text_lines = std::ceil(static_cast<float>(text_bytes) / chars_per_line);
  return ImGui::GetTextLineHeightWithSpacing() * (3.0f + text_lines);
}

// Only the messages in view are laid out and drawn; the rest are skipped by their remembered
// (or estimated) heights, so a frame costs what the window shows, however long the branch.
void DrawMessages(AppState& state) {
  BranchView& view = state.branch;
  const bool current = view.RefreshInBackground(state.db(), state.conversation);
  if (!current) state.this_frame.awaiting_results = true;
  if (view.conversation != state.conversation) {
    ImGui::TextDisabled("Loading the conversation...");
    return;
  }
  if (!view.info) return;
  const chat::LiveReply live = state.chat().live();
  const bool live_here = live.active && live.conversation == state.conversation;
  if (!view.info->settings.system_prompt.empty()) {
    ImGui::TextDisabled("System prompt: %s", view.info->settings.system_prompt.c_str());
    ImGui::Separator();
  }
  // The live reply comes from the session until the branch read from the store holds it (a
  // reply without its row yet, or one the last read did not see): the branch on screen then
  // ends at the message it answers (a regenerated reply's predecessor stays in the store, one
  // arrow away).
  const bool live_apart = live_here && std::none_of(view.thread.begin(), view.thread.end(), [&](const auto& m) {
                            return live.message != 0 && m.id == live.message;
                          });
  size_t shown = view.thread.size();
  if (live_apart) {
    for (size_t i = 0; i < view.thread.size(); ++i) {
      if (view.thread[i].id == live.parent) shown = i + 1;
    }
  }
  const float width = ImGui::GetContentRegionAvail().x;
  const float view_top = ImGui::GetScrollY();
  const float view_bottom = view_top + ImGui::GetWindowHeight();
  float y = ImGui::GetCursorPosY();
  std::vector<store::Id> drawn;
  for (size_t i = 0; i < shown; ++i) {
    const store::Message& m = view.thread[i];
    const bool streaming_here = live.active && live.message == m.id;
    const size_t text_bytes = streaming_here ? live.text.size() : m.content.size();
    BranchView::Height& height = view.heights[i];
    if (height.text_bytes != text_bytes || height.width != width) {
      height = {text_bytes, width, EstimatedHeight(text_bytes, width), false};
    }
    // The message being edited and the streaming one are drawn wherever they are: their
    // heights change without their stored text changing.
    const bool always = state.editing == m.id || streaming_here;
    if (!always && (y + height.height < view_top || y > view_bottom)) {
      y += height.height;
      continue;
    }
    ImGui::SetCursorPosY(y);
    DrawMessage(state, m, live, i + 1 == shown, !height.measured);
    drawn.push_back(m.id);
    ++state.this_frame.messages_laid_out;
    height.height = ImGui::GetCursorPosY() - y;
    height.measured = true;
    y += height.height;
  }
  ImGui::SetCursorPosY(y);
  const auto not_drawn = [&](const auto& entry) {
    return std::find(drawn.begin(), drawn.end(), entry.first) == drawn.end();
  };
  std::erase_if(view.layouts, not_drawn);
  std::erase_if(view.thinking_layouts, not_drawn);
  if (live_apart) {
    ImGui::PushFont(state.fonts.bold);
    ImGui::TextUnformatted("Assistant");
    ImGui::PopFont();
    if (live.message == 0) {
      ImGui::TextDisabled("Reading the prompt... %.1f s", live.seconds);
    } else {
      state.glyphs.Note(live.text, state.fonts.regular);
      ImGui::PushID(static_cast<int>(live.message));
      DrawReplyText(state, live.message, live.text, nullptr, nullptr);
      ImGui::PopID();
      ImGui::TextDisabled("%u tokens  |  %.1f s", live.tokens, live.seconds);
    }
  }
  ImGui::Dummy(ImVec2(0.0f, 0.0f));  // the skipped messages below count in the scroll range
  const bool at_bottom = ImGui::GetScrollY() >= ImGui::GetScrollMaxY() - ImGui::GetTextLineHeight() * 3;
  state.this_frame.messages_at_bottom = ImGui::GetScrollY() >= ImGui::GetScrollMaxY();
  const bool was_following = view.following == state.conversation;
  if (state.scroll_messages_to) {
    ImGui::SetScrollY(*state.scroll_messages_to * ImGui::GetScrollMaxY());
    state.scroll_messages_to.reset();
    view.following = 0;
  } else if ((live_here || was_following) && at_bottom) {
    // Follow a streaming reply unless the user scrolled up to read, and once it ends until the
    // finished reply (its figures and buttons below the text) is read from the store.
    ImGui::SetScrollHereY(1.0f);
    view.following = live_here || !current ? state.conversation : 0;
  } else {
    view.following = 0;
  }
}

// --- input -----------------------------------------------------------------------------------

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

std::string ContextGaugeLabel(std::optional<uint32_t> used, uint32_t context) {
  if (!used) return "context: counting tokens...";
  if (*used >= context) return fmt::format("context full: {} tokens (oldest turns are left out)", context);
  return fmt::format("context {} / {} tokens", *used, context);
}

void DrawChat(AppState& state) {
  DrawModelState(state);
  DrawContextGauge(state);
  DrawThinkingSwitch(state);
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
