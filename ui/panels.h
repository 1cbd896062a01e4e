#pragma once
// The desktop app's panels, one per file, each drawing from AppState (see app_state.h).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ui/app_state.h"

namespace qvk::ui {

void DrawApp(AppState& state);                   // main_panel.cpp: layout, menus, shortcuts, banner
void DrawSidebar(AppState& state);               // sidebar_panel.cpp: conversations, search, undo
void DrawChat(AppState& state);                  // chat_panel.cpp: the branch on screen, reply stats, input
void DrawSettings(AppState& state);              // settings_panel.cpp: model, device, context, GPU memory
void DrawConversationSettings(AppState& state);  // conversation_settings_panel.cpp: prompt and sampling
void DrawFileDialogs(AppState& state);           // file_dialogs_panel.cpp: rename, export, import, model picker
void DrawDatabaseProblem(AppState& state);       // database_panel.cpp: locked or damaged database, ways out
void DrawWelcome(AppState& state);               // welcome_panel.cpp: the bundled demo model, opening a real one
void DrawAttention(AppState& state);             // attention_panel.cpp: a message's attention maps beside the chat
void DrawBenchmark(AppState& state);             // benchmark_panel.cpp: run, table, charts and comparison of benchmarks

// chat_panel.cpp: what the context gauge reads for `used` tokens (none: not counted yet) of
// `context`. A conversation longer than the context is cut at the next reply, oldest turns
// first, so the gauge says it is full rather than count past the context.
std::string ContextGaugeLabel(std::optional<uint32_t> used, uint32_t context);

// attention_panel.cpp: a token's text as the attention panel labels it, spaces, newlines and
// tabs as visible marks (special tokens are already readable as written).
std::string AttentionTokenLabel(std::string_view piece);
// attention_panel.cpp: tokens [first, end) of the sequence on screen as text, wrapped, each shaded
// by the chosen token's attention (AttentionTokenShading); a click chooses one. The chat draws a
// message whose attention is open this way, the panel the whole sequence.
void DrawAttentionTokens(AppState& state, uint32_t first, uint32_t end);

}  // namespace qvk::ui
