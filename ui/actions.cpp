// Sections: conversations / messages / thinking / files / attention maps / benchmarks / settings / choosing a model /
// the welcome / loading a model / database problems
#include "ui/actions.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string_view>

#include <fmt/format.h>
#include <imgui.h>
#include <spdlog/spdlog.h>

#include "chat/attention_export.h"
#include "chat/bundled_model.h"
#include "store/bench_exchange.h"
#include "store/exchange.h"

namespace qvk::ui {
namespace {

// Runs a store or file call; its error (disk full, locked, read-only, a file system failure)
// becomes the banner.
template <class Fn>
bool Guarded(AppState& state, Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const std::exception& e) {
    state.ShowError(e.what());
    spdlog::warn("{}", e.what());
    return false;
  }
}

bool ReportSessionError(AppState& state) {
  if (auto error = state.chat().TakeError()) state.ShowError(*error);
  return false;
}

std::string SafeFileName(const std::string& title) {
  std::string name;
  for (const char c : title) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (keep)
      name += c;
    else if (!name.empty() && name.back() != '-')
      name += '-';
  }
  while (!name.empty() && name.back() == '-') name.pop_back();
  return name.empty() ? "conversation" : name;
}

}  // namespace

// --- conversations ------------------------------------------------------------------------

store::Id NewConversation(AppState& state) {
  store::Id id = 0;
  Guarded(state, [&] {
    state.db().Transaction([&] {
      id = state.db().CreateConversation("", state.chat().DefaultSettings());
      const store::ConversationEngine engine = DefaultEngine(state.db());
      if (engine.remote()) state.db().SetConversationEngine(id, engine);
    });
  });
  if (id != 0) SelectConversation(state, id);
  return id;
}

void SelectConversation(AppState& state, store::Id conversation) {
  state.conversation = conversation;
  state.editing = 0;
  state.focus_draft = true;
  if (state.db().read_only()) return;
  try {
    state.db().SetSetting(kSettingOpenConversation, std::to_string(conversation));
  } catch (const Error& e) {
    // Only the next start's choice is lost; the selection itself worked, so no banner.
    spdlog::warn("could not remember the open conversation: {}", e.what());
  }
}

void ReopenLastConversation(AppState& state) {
  const auto saved = state.db().GetSetting(kSettingOpenConversation);
  if (!saved) return;
  store::Id id = 0;
  try {
    id = std::stoll(*saved);
  } catch (const std::exception&) {
    return;  // a hand-edited value that is not an id: as if none was open
  }
  if (state.db().GetConversation(id)) state.conversation = id;
}

bool RenameConversation(AppState& state, store::Id conversation, const std::string& title) {
  return Guarded(state, [&] { state.db().RenameConversation(conversation, title); });
}

bool TogglePinned(AppState& state, store::Id conversation) {
  return Guarded(state, [&] {
    if (const auto c = state.db().GetConversation(conversation)) state.db().SetPinned(conversation, !c->pinned);
  });
}

bool DeleteConversation(AppState& state, store::Id conversation) {
  if (state.chat().generating() && state.chat().live().conversation == conversation) {
    state.ShowError("Stop the reply before deleting its conversation.");
    return false;
  }
  return Guarded(state, [&] {
    const auto c = state.db().GetConversation(conversation);
    state.db().DeleteConversation(conversation);
    state.undo = PendingUndo{conversation, c ? c->title : std::string()};
    if (state.conversation == conversation) state.conversation = 0;
  });
}

bool UndoDelete(AppState& state) {
  if (!state.undo) return false;
  const store::Id id = state.undo->conversation;
  const bool ok = Guarded(state, [&] { state.db().RestoreConversation(id); });
  if (ok) {
    state.undo.reset();
    SelectConversation(state, id);
  }
  return ok;
}

SearchWorker& RequestSearch(AppState& state) {
  if (!state.search_worker) {
    state.search_worker = std::make_unique<SearchWorker>(state.db().path());
  }
  state.search_worker->Request(state.search, state.db().revision());
  return *state.search_worker;
}

// --- messages -----------------------------------------------------------------------------

bool SendDraft(AppState& state) {
  std::string text = state.draft;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.empty()) return false;
  // A remote engine (the open conversation's, or the one a new conversation gets) needs no model here.
  bool remote = state.branch.info && state.branch.info->engine.remote();
  if (state.conversation == 0) Guarded(state, [&] { remote = DefaultEngine(state.db()).remote(); });
  if (!remote && state.chat().model_status() != chat::ModelStatus::Ready) {
    state.ShowError(state.chat().model_status() == chat::ModelStatus::Loading
                        ? "The model is still loading; your message stays here until it is ready."
                        : "No model is loaded: choose one in File > Settings. Your message stays here.");
    return false;
  }
  if (state.conversation == 0 && NewConversation(state) == 0) return false;
  if (!state.chat().Send(state.conversation, text)) return ReportSessionError(state);
  state.draft.clear();  // only once the message is stored: a refused send keeps what was typed
  return true;
}

bool Regenerate(AppState& state, store::Id assistant_message) {
  return state.chat().Regenerate(assistant_message) || ReportSessionError(state);
}

bool SubmitEdit(AppState& state) {
  if (state.editing == 0) return false;
  if (!state.chat().Edit(state.editing, state.edit_text)) return ReportSessionError(state);
  state.editing = 0;
  state.edit_text.clear();
  return true;
}

bool ContinueReply(AppState& state, store::Id assistant_message) {
  return state.chat().Continue(assistant_message) || ReportSessionError(state);
}

bool SwitchBranch(AppState& state, store::Id message, int delta) {
  return Guarded(state, [&] {
    const auto m = state.db().GetMessage(message);
    if (!m) return;
    const auto siblings = state.db().Siblings(m->conversation_id, m->parent_id);
    for (size_t i = 0; i < siblings.size(); ++i) {
      if (siblings[i].id != message) continue;
      const auto target = static_cast<std::ptrdiff_t>(i) + delta;
      if (target < 0 || target >= static_cast<std::ptrdiff_t>(siblings.size())) return;
      const store::Id leaf = state.db().NewestLeafUnder(siblings[static_cast<size_t>(target)].id);
      state.db().SetCurrentLeaf(m->conversation_id, leaf);
      return;
    }
  });
}

void StopGeneration(AppState& state) {
  state.chat().Stop();
}

void CopyToClipboard(const std::string& text) {
  ImGui::SetClipboardText(text.c_str());
}

// --- thinking -----------------------------------------------------------------------------

bool SetThinking(AppState& state, bool enable_thinking) {
  return Guarded(state, [&] {
    std::optional<store::Conversation> conversation;
    if (state.conversation != 0) conversation = state.db().GetConversation(state.conversation);
    // With none open, the conversation the next message would start.
    const store::Conversation target = conversation.value_or(store::Conversation{.engine = DefaultEngine(state.db())});
    if (!state.chat().Thinking(target)) {
      throw Error("This conversation's model has no thinking switch: its chat template does not read enable_thinking.");
    }
    if (!conversation && NewConversation(state) == 0) return;
    state.db().SetConversationThinking(state.conversation, enable_thinking);
  });
}

bool ToggleThinking(AppState& state) {
  bool thinking = true;
  const bool known = Guarded(state, [&] {
    const std::optional<store::Conversation> conversation =
        state.conversation != 0 ? state.db().GetConversation(state.conversation) : std::nullopt;
    const std::optional<bool> now =
        state.chat().Thinking(conversation.value_or(store::Conversation{.engine = DefaultEngine(state.db())}));
    if (!now) {
      throw Error("This conversation's model has no thinking switch: its chat template does not read enable_thinking.");
    }
    thinking = *now;
  });
  return known && SetThinking(state, !thinking);
}

void SetThinkingOpen(AppState& state, store::Id message, bool open) {
  if (open) {
    state.thinking_open.insert(message);
  } else {
    state.thinking_open.erase(message);
  }
}

// --- files --------------------------------------------------------------------------------

std::filesystem::path DefaultExportPath(AppState& state, bool json) {
  std::string title = "conversation";
  if (state.conversation != 0) {
    if (const auto c = state.db().GetConversation(state.conversation); c && !c->title.empty()) title = c->title;
  }
  const char* home = std::getenv("HOME");
  const std::filesystem::path folder = home ? std::filesystem::path(home) : std::filesystem::current_path();
  return folder / (SafeFileName(title) + (json ? ".json" : ".md"));
}

bool ExportConversation(AppState& state, const std::filesystem::path& path, bool json) {
  if (state.conversation == 0) {
    state.ShowError("Choose a conversation to export.");
    return false;
  }
  return Guarded(state, [&] {
    const std::string text = json ? store::ExportJson(state.db(), state.conversation)
                                  : store::ExportMarkdown(state.db(), state.conversation);
    // Write beside the target, then rename: a full disk never leaves half a file under the name.
    const std::filesystem::path partial = path.string() + ".partial";
    {
      std::ofstream out(partial, std::ios::binary | std::ios::trunc);
      out << text;
      out.flush();
      if (!out) {
        std::error_code ignored;
        std::filesystem::remove(partial, ignored);
        throw Error(fmt::format("could not write {} (disk full or no permission)", path.string()));
      }
    }
    std::error_code ec;
    std::filesystem::rename(partial, path, ec);
    if (ec) throw Error(fmt::format("could not write {}: {}", path.string(), ec.message()));
    state.ShowSuccess(fmt::format("Exported to {}", path.string()));
  });
}

namespace {

std::string ReadFileText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("could not read {}", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

bool ImportConversation(AppState& state, const std::filesystem::path& path) {
  return Guarded(state, [&] {
    const store::Id id = store::ImportJson(state.db(), ReadFileText(path));
    SelectConversation(state, id);
    state.ShowSuccess(fmt::format("Imported {}", path.filename().string()));
  });
}

// --- attention maps -------------------------------------------------------------------------

namespace {

uint32_t AttentionTokens(const AttentionPanel& panel) {
  return panel.tokens ? static_cast<uint32_t>(panel.tokens->ids.size()) : 0;
}

// The map with values under the threshold set to 0.
AttentionMap ShownMap(const AttentionMap& map, float threshold) {
  AttentionMap shown = map;
  for (float& v : shown.values) {
    if (v < threshold) v = 0;
  }
  return shown;
}

// The captured map once it is in; until then the live reply's rows.
void UpdateShownMap(AttentionPanel& panel) {
  panel.shown.reset();
  ++panel.shown_revision;
  if (panel.map) {
    panel.shown = ShownMap(*panel.map, panel.threshold);
  } else if (panel.live && panel.live->map) {
    panel.shown = ShownMap(*panel.live->map, panel.threshold);
  }
}

bool RequestAttention(AppState& state);

bool FollowingLiveReply(const AttentionPanel& panel) {
  return panel.live && !panel.live->ended;
}

// The live rows as a band of the map: query rows first_position on, keys up to the last of them,
// pooled as a captured map is past kAttentionMapSide tokens.
AttentionMap LiveRowsMap(const ModelConfig& config, const LiveAttentionMap& live) {
  const auto tokens = static_cast<uint32_t>(live.first_position + live.rows.size());
  return MapOfRows(AttentionViewRequest(config, live.view, tokens), live.first_position, live.rows,
                   LayerWindow(config, live.view.layer));
}

// A reply started while the panel was open: the panel follows it, its map growing a row a token.
void FollowLiveReply(AppState& state, const chat::LiveAttention::Update& update) {
  AttentionPanel& panel = state.attention;
  panel.live = LiveAttentionMap{.reply = update.reply, .view = panel.view};
  panel.live->tokens.message_begin = update.prompt_tokens;
  panel.map.reset();
  panel.tokens.reset();
  panel.thumbnails.clear();
  panel.hover.reset();
  panel.hover_from_mouse = false;
  panel.token.reset();
  panel.detail.reset();
  UpdateShownMap(panel);
}

// Each frame while the panel is open: what the live feed brought since the last frame.
void TrackLiveAttention(AppState& state, const ModelConfig& config) {
  AttentionPanel& panel = state.attention;
  if (!panel.live_feed) {
    panel.live_feed = std::make_shared<chat::LiveAttention>();
    panel.live_feed->SetViews({AttentionViewHeads(config, panel.view)});
    state.chat().SetLiveAttention(panel.live_feed);
  }
  // Asked first: rows pushed before the reply ended are in the feed by the time it says so.
  const bool generating = state.chat().generating();
  chat::LiveAttention::Update update = panel.live_feed->Take();
  if (update.reply != panel.replies_seen) {
    panel.replies_seen = update.reply;
    FollowLiveReply(state, update);
  }
  if (!panel.live) return;
  LiveAttentionMap& live = *panel.live;
  for (chat::LiveAttention::Token& token : update.tokens) {
    live.tokens.ids.push_back(token.id);
    live.tokens.pieces.push_back(std::move(token.piece));
  }
  const chat::LiveAttention::ViewRows& rows = update.views.front();
  if (!live.ended && !rows.rows.empty()) {
    if (live.rows.empty()) live.first_position = rows.first_position;
    live.rows.insert(live.rows.end(), rows.rows.begin(), rows.rows.end());
    live.map = LiveRowsMap(config, live);
    if (!panel.map) UpdateShownMap(panel);
  }
  if (live.ended) return;
  if (update.message != 0) panel.message = live.tokens.message = update.message;
  if (!generating) {
    // The reply is done: its capture (every row, the thumbnails) replaces the live rows when in.
    live.ended = true;
    if (panel.message != 0 && panel.message == live.tokens.message) RequestAttention(state);
  }
}

// Queues the capture the panel needs next, unless one is under way (TrackAttention asks again when
// it ends): the message's tokens, then the view's map and, the first time, the thumbnails.
bool RequestAttention(AppState& state) {
  AttentionPanel& panel = state.attention;
  if (panel.capturing || panel.message == 0 || FollowingLiveReply(panel)) return true;
  const std::optional<ModelConfig> config = state.chat().model_config();
  if (!config) {
    state.ShowError("Attention needs a loaded model: wait for it to load, or choose one in Settings.");
    return false;
  }
  std::vector<AttentionRequest> requests;
  if (const uint32_t tokens = AttentionTokens(panel); tokens != 0) {
    requests.push_back(AttentionViewRequest(*config, panel.view, tokens));
    if (panel.thumbnails.empty()) {
      for (uint32_t layer = 0; layer < config->num_layers; ++layer) {
        AttentionRequest thumbnails =
            Pooled(EveryHead(*config, layer, HeadReduce::Max), tokens, kAttentionThumbnailSide);
        thumbnails.mute_sink = panel.view.mute_sink;
        requests.push_back(thumbnails);
      }
    }
  }
  if (!state.chat().CaptureAttention(panel.message, std::move(requests))) return ReportSessionError(state);
  panel.capturing = true;
  panel.requested_view = panel.view;
  return true;
}

}  // namespace

AttentionRequest AttentionViewHeads(const ModelConfig& config, const AttentionView& view) {
  AttentionRequest request;
  switch (view.heads) {
    case AttentionHeads::One:
      request = OneHead(view.layer, view.index);
      break;
    case AttentionHeads::Mean:
    case AttentionHeads::Max:
      request = AllHeads(config, view.layer, view.heads == AttentionHeads::Max ? HeadReduce::Max : HeadReduce::Mean);
      break;
    case AttentionHeads::GroupMean:
    case AttentionHeads::GroupMax:
      request = KvGroup(config, view.layer, view.index,
                        view.heads == AttentionHeads::GroupMax ? HeadReduce::Max : HeadReduce::Mean);
      break;
  }
  request.mute_sink = view.mute_sink;
  return request;
}

AttentionRequest AttentionViewRequest(const ModelConfig& config, const AttentionView& view, uint32_t tokens) {
  return Pooled(AttentionViewHeads(config, view), tokens, kAttentionMapSide);
}

const chat::MessageAttention* AttentionTokensOnScreen(const AttentionPanel& panel) {
  if (panel.tokens) return &*panel.tokens;
  return panel.live ? &panel.live->tokens : nullptr;
}

bool OpenAttention(AppState& state, store::Id message) {
  if (state.branch.info && state.branch.info->engine.remote()) {
    state.ShowError(
        fmt::format("Attention maps are offered only for models on this computer: they need the model's "
                    "weights, and this conversation's replies come from {}.",
                    state.branch.info->engine.base_url));
    return false;
  }
  const std::optional<ModelConfig> config = state.chat().model_config();
  if (!config) {
    state.ShowError("Attention needs a loaded model: wait for it to load, or choose one in Settings.");
    return false;
  }
  AttentionPanel& panel = state.attention;
  // How the maps are shown carries over to the next message; what was captured does not.
  AttentionView view = panel.view;
  if (view.layer >= config->num_layers) view = {};
  const bool capturing = panel.capturing;
  const AttentionView requested = panel.requested_view;
  panel = AttentionPanel{.message = message,
                         .view = view,
                         .log_scale = panel.log_scale,
                         .threshold = panel.threshold,
                         .live_feed = std::move(panel.live_feed),
                         .replies_seen = panel.replies_seen,
                         .texture = std::move(panel.texture)};
  // A capture still under way belongs to the last message: its result is dropped when it comes.
  panel.capturing = capturing;
  panel.requested_view = requested;
  return RequestAttention(state);
}

void CloseAttention(AppState& state) {
  AttentionPanel& panel = state.attention;
  // Replies stop writing their rows (from the next one on).
  if (panel.live_feed) state.chat().SetLiveAttention(nullptr);
  const bool capturing = panel.capturing;
  const AttentionView requested = panel.requested_view;
  panel = AttentionPanel{.view = panel.view,
                         .log_scale = panel.log_scale,
                         .threshold = panel.threshold,
                         .texture = std::move(panel.texture)};
  panel.capturing = capturing;
  panel.requested_view = requested;
}

bool ShowAttentionView(AppState& state, const AttentionView& view) {
  const std::optional<ModelConfig> config = state.chat().model_config();
  if (!config) {
    state.ShowError("Attention needs a loaded model: wait for it to load, or choose one in Settings.");
    return false;
  }
  const bool grouped = view.heads == AttentionHeads::GroupMean || view.heads == AttentionHeads::GroupMax;
  const uint32_t count = view.heads == AttentionHeads::One ? config->num_heads : grouped ? config->num_kv_heads : 1;
  if (view.layer >= config->num_layers || view.index >= count) {
    state.ShowError(fmt::format("The model has {} layers, {} heads and {} KV heads.", config->num_layers,
                                config->num_heads, config->num_kv_heads));
    return false;
  }
  AttentionPanel& panel = state.attention;
  panel.view = view;
  if (!grouped && view.heads != AttentionHeads::One) panel.view.index = 0;
  // The live feed reduces the rows to come to the new view; the rows so far were of the old one.
  if (panel.live_feed) panel.live_feed->SetViews({AttentionViewHeads(*config, panel.view)});
  if (FollowingLiveReply(panel)) {
    panel.live->view = panel.view;
    panel.live->rows.clear();
    panel.live->map.reset();
    UpdateShownMap(panel);
    return true;
  }
  if (panel.map && panel.captured_view == panel.view) return true;
  return RequestAttention(state);
}

void SetAttentionSinkMuted(AppState& state, bool muted) {
  AttentionView view = state.attention.view;
  if (view.mute_sink == muted) return;
  view.mute_sink = muted;
  // The thumbnails are captured again with the view's map, muted as it is.
  state.attention.thumbnails.clear();
  ShowAttentionView(state, view);
}

void SetAttentionThreshold(AppState& state, float threshold) {
  state.attention.threshold = std::clamp(threshold, 0.0f, 1.0f);
  UpdateShownMap(state.attention);
}

void TrackAttention(AppState& state) {
  AttentionPanel& panel = state.attention;
  if (panel.message != 0) {
    if (const std::optional<ModelConfig> config = state.chat().model_config()) TrackLiveAttention(state, *config);
  }
  std::optional<chat::MessageAttention> result = state.chat().TakeAttention();
  if (!result) return;
  panel.capturing = false;
  // Asked for before the reply the panel now follows began: that reply's capture comes after it.
  if (FollowingLiveReply(panel)) return;
  if (result->message != panel.message) {
    RequestAttention(state);
    return;
  }
  if (!result->error.empty()) {
    state.ShowError(fmt::format("The attention of this message could not be captured: {}", result->error));
    CloseAttention(state);
    return;
  }
  std::vector<AttentionMap> maps = std::move(result->maps);
  if (!panel.tokens) panel.tokens = std::move(*result);
  if (panel.requested_detail) {
    panel.requested_detail.reset();
    if (!maps.empty()) {
      panel.detail = std::move(maps.front());
      ++panel.detail_revision;
    }
  } else if (!maps.empty()) {
    panel.capture_gpu_bytes = result->gpu_bytes;
    panel.map = std::move(maps.front());
    panel.captured_view = panel.requested_view;
    if (maps.size() > 1)
      panel.thumbnails.assign(std::make_move_iterator(maps.begin() + 1), std::make_move_iterator(maps.end()));
    panel.live.reset();  // the whole map replaces the rows the reply fed
    UpdateShownMap(panel);
  }
  if (!panel.map || panel.captured_view != panel.view) RequestAttention(state);
}

bool SelectAttentionToken(AppState& state, std::optional<uint32_t> token, TokenDirection direction) {
  AttentionPanel& panel = state.attention;
  const chat::MessageAttention* tokens = AttentionTokensOnScreen(panel);
  if (token && (!tokens || *token >= tokens->ids.size())) {
    state.ShowError(
        fmt::format("Token {} is not in the sequence on screen ({} tokens).", *token, tokens ? tokens->ids.size() : 0));
    return false;
  }
  panel.token = token;
  panel.direction = direction;
  return true;
}

void MoveAttentionToken(AppState& state, int delta) {
  AttentionPanel& panel = state.attention;
  const chat::MessageAttention* tokens = AttentionTokensOnScreen(panel);
  if (!panel.token || !tokens || tokens->ids.empty()) return;
  const int64_t moved = std::clamp<int64_t>(int64_t{*panel.token} + delta, 0, int64_t(tokens->ids.size()) - 1);
  panel.token = static_cast<uint32_t>(moved);
}

std::vector<float> AttentionTokenShading(const AttentionPanel& panel) {
  const chat::MessageAttention* tokens = AttentionTokensOnScreen(panel);
  if (!panel.token || !panel.shown || !tokens) return {};
  const AttentionMap& map = *panel.shown;
  const uint32_t chosen = *panel.token, cell = map.request.cell;
  const uint32_t count = std::min<uint32_t>(map.tokens, static_cast<uint32_t>(tokens->ids.size()));
  const auto value = [&](uint32_t query, uint32_t key) {
    return map.values[size_t{(query - map.request.first_row) / cell} * map.cols + key / cell];
  };
  std::vector<float> shading(tokens->ids.size(), -1.0f);
  if (panel.direction == TokenDirection::AttendsTo) {
    if (chosen < map.request.first_row || chosen >= map.request.end_row) return shading;
    for (uint32_t key = 0; key <= chosen && key < count; ++key) shading[key] = value(chosen, key);
  } else {
    for (uint32_t query = std::max(chosen, map.request.first_row); query < map.request.end_row && query < count;
         ++query) {
      shading[query] = value(query, chosen);
    }
  }
  return shading;
}

void ZoomAttention(AppState& state, HeatmapZoom zoom) {
  state.attention.zoom = zoom;
}

namespace {

bool SameHeads(const AttentionRequest& a, const AttentionRequest& b) {
  return a.layer == b.layer && a.first_head == b.first_head && a.plane_heads == b.plane_heads && a.planes == b.planes &&
         a.reduce == b.reduce && a.mute_sink == b.mute_sink;
}

// The rows in view of a pooled map at the cell the heatmap's pixels need; none where the map is
// as fine as the screen.
std::optional<AttentionRequest> WantedDetail(const AttentionPanel& panel, const ModelConfig& config) {
  if (!panel.map || !panel.shown || panel.heatmap_pixels == 0 || panel.map->request.cell == 1) return std::nullopt;
  const HeatmapZoom zoom = ClampedZoom(panel);
  const float per_pixel = zoom.span / static_cast<float>(panel.heatmap_pixels);
  if (per_pixel >= static_cast<float>(panel.map->request.cell)) return std::nullopt;
  AttentionRequest request = AttentionViewHeads(config, panel.view);
  request.cell = std::max(1u, static_cast<uint32_t>(std::ceil(per_pixel)));
  request.first_row = static_cast<uint32_t>(zoom.row);
  request.end_row = std::min(panel.map->tokens, static_cast<uint32_t>(std::ceil(zoom.row + zoom.span)) + 1);
  return request;
}

bool DetailCovers(const AttentionMap& detail, const AttentionRequest& wanted) {
  return SameHeads(detail.request, wanted) && detail.request.cell == wanted.cell &&
         detail.request.first_row <= wanted.first_row && detail.request.end_row >= wanted.end_row;
}

}  // namespace

const AttentionMap* AttentionDetailInView(const AppState& state) {
  const AttentionPanel& panel = state.attention;
  const std::optional<ModelConfig> config = state.session ? state.session->model_config() : std::nullopt;
  if (!config || !panel.detail) return nullptr;
  const std::optional<AttentionRequest> wanted = WantedDetail(panel, *config);
  return wanted && DetailCovers(*panel.detail, *wanted) ? &*panel.detail : nullptr;
}

bool AttentionDetailReady(const AppState& state) {
  const std::optional<ModelConfig> config = state.session ? state.session->model_config() : std::nullopt;
  return !config || !WantedDetail(state.attention, *config) || AttentionDetailInView(state) != nullptr;
}

void RequestAttentionDetail(AppState& state) {
  AttentionPanel& panel = state.attention;
  const std::optional<ModelConfig> config = state.chat().model_config();
  if (!config || panel.capturing || AttentionDetailReady(state)) return;
  AttentionRequest request = *WantedDetail(panel, *config);
  // Half a view more above and below, so that a pan does not ask again at once.
  const uint32_t margin = (request.end_row - request.first_row) / 2;
  request.first_row -= std::min(request.first_row, margin);
  request.end_row = std::min(panel.map->tokens, request.end_row + margin);
  if (!state.chat().CaptureAttention(panel.message, {request})) {
    ReportSessionError(state);
    return;
  }
  panel.capturing = true;
  panel.requested_detail = request;
}

HeatmapZoom ClampedZoom(const AttentionPanel& panel) {
  if (!panel.shown) return panel.zoom;
  const AttentionMap& map = *panel.shown;
  const auto rows = static_cast<float>(map.request.end_row - map.request.first_row);
  const auto cols = static_cast<float>(map.tokens);
  const float whole = std::max(rows, cols);
  HeatmapZoom zoom = panel.zoom;
  if (zoom.span <= 0 || zoom.span >= whole) return {0, 0, whole};
  zoom.span = std::max(zoom.span, std::min(whole, kAttentionMinZoomSpan));
  zoom.row = std::clamp(zoom.row, 0.0f, std::max(0.0f, rows - zoom.span));
  zoom.col = std::clamp(zoom.col, 0.0f, std::max(0.0f, cols - zoom.span));
  return zoom;
}

std::filesystem::path DefaultAttentionExportPath(AppState& state, AttentionFormat format) {
  const AttentionView& view = state.attention.view;
  const char* heads[] = {"head", "mean", "max", "group-mean", "group-max"};
  const char* extension = format == AttentionFormat::Png ? "png" : format == AttentionFormat::Csv ? "csv" : "npy";
  std::string name =
      fmt::format("attention-{}-layer{}-{}", state.attention.message, view.layer, heads[static_cast<int>(view.heads)]);
  if (view.heads == AttentionHeads::One || view.heads == AttentionHeads::GroupMean ||
      view.heads == AttentionHeads::GroupMax) {
    name += std::to_string(view.index);
  }
  return DefaultExportPath(state, false).parent_path() / fmt::format("{}.{}", name, extension);
}

bool ExportAttention(AppState& state, const std::filesystem::path& path, AttentionFormat format) {
  const AttentionPanel& panel = state.attention;
  const bool live_view = !panel.map && panel.live && panel.live->view == panel.view;
  if (!panel.shown || (panel.captured_view != panel.view && !live_view)) {
    state.ShowError("No attention map is on screen yet: open a reply's attention and wait for it.");
    return false;
  }
  const bool ok = Guarded(state, [&] {
    switch (format) {
      case AttentionFormat::Png: {
        // As on screen: the scale's type, and a picture at least ~512 pixels a side.
        const chat::PngOptions options{.pixels_per_value = std::max(1u, 512 / std::max(panel.shown->cols, 1u)),
                                       .scale_max = 0,
                                       .log_decades = panel.log_scale ? kAttentionLogDecades : 0.0f};
        chat::WriteAttentionPng(path, *panel.shown, 0, options);
        break;
      }
      case AttentionFormat::Csv:
        chat::WriteAttentionCsv(path, *panel.shown, 0);
        break;
      case AttentionFormat::Npy:
        chat::WriteAttentionNpy(path, *panel.shown, 0);
        break;
    }
  });
  if (ok) state.ShowSuccess(fmt::format("Attention map written to {}", path.string()));
  return ok;
}

// --- benchmarks -----------------------------------------------------------------------------

void OpenBenchmark(AppState& state, bool open) {
  state.bench.open = open;
  if (open) RefreshBenchRuns(state);
}

void RefreshBenchRuns(AppState& state) {
  BenchPanel& panel = state.bench;
  const uint64_t revision = state.db().revision();
  if (panel.revision != revision) {
    panel.runs = state.db().ListBenchRuns();
    panel.detail.reset();
    panel.revision = revision;
    // Runs deleted since stay out of the selection.
    std::erase_if(panel.selected, [&](store::Id id) {
      return std::none_of(panel.runs.begin(), panel.runs.end(), [&](const auto& r) { return r.id == id; });
    });
  }
  // The kernel chart and the roofline show the last selected run, or with none selected the last
  // one saved: most often the benchmark just run, whose profile then shows without a click.
  store::Id shown = 0;
  if (!panel.selected.empty()) {
    shown = panel.selected.back();
  } else {
    for (const store::BenchRun& run : panel.runs) shown = std::max(shown, run.id);
  }
  if (shown == 0) {
    panel.detail.reset();
  } else if (!panel.detail || panel.detail->id != shown) {
    panel.detail = state.db().GetBenchRun(shown);
    panel.detail_row = 0;
  }
}

bool StartBenchmark(AppState& state) {
  const BenchForm& form = state.bench.form;
  if (form.prompt < 0 || form.generate < 0 || form.depth < 0 || form.repetitions < 1) {
    state.ShowError("Sizes and depth cannot be negative, and a test needs at least one repetition.");
    return false;
  }
  chat::BenchRequest request{.model_path = form.model_path,
                             .prompts = {static_cast<uint32_t>(form.prompt)},
                             .generations = {static_cast<uint32_t>(form.generate)},
                             .depths = {static_cast<uint32_t>(form.depth)},
                             .repetitions = static_cast<uint32_t>(form.repetitions),
                             .kernels = form.kernels,
                             .device_peak = form.device_peak,
                             .version = state.program_version,
                             .commit = state.program_commit};
  return state.chat().StartBenchmark(std::move(request)) || ReportSessionError(state);
}

void CancelBenchmark(AppState& state) {
  state.chat().CancelBenchmark();
}

void ToggleBenchRun(AppState& state, store::Id run) {
  std::vector<store::Id>& selected = state.bench.selected;
  if (const auto it = std::find(selected.begin(), selected.end(), run); it != selected.end()) {
    selected.erase(it);
  } else {
    selected.push_back(run);
  }
  RefreshBenchRuns(state);
}

void ClearBenchSelection(AppState& state) {
  state.bench.selected.clear();
  RefreshBenchRuns(state);
}

bool ImportBenchRuns(AppState& state, const std::filesystem::path& path) {
  return Guarded(state, [&] {
    store::BenchImport imported;
    try {
      imported = store::ImportBenchJson(state.db(), ReadFileText(path));
    } catch (const store::StoreError& e) {
      if (e.kind() != store::StoreErrorKind::InvalidImport) throw;
      throw Error(fmt::format("{} was not imported, nothing changed: {}", path.filename().string(), e.what()));
    }
    for (const store::Id id : imported.runs) state.bench.selected.push_back(id);
    RefreshBenchRuns(state);
    state.ShowSuccess(fmt::format(
        "Imported {} benchmark run{} from {}{}", imported.runs.size(), imported.runs.size() == 1 ? "" : "s",
        path.filename().string(),
        imported.already_held ? fmt::format(" ({} already stored)", imported.already_held) : std::string()));
  });
}

bool ExportBenchRuns(AppState& state, const std::filesystem::path& path) {
  return Guarded(state, [&] {
    const std::string text = store::ExportBenchJson(state.db(), state.bench.selected);
    std::ofstream out(path, std::ios::binary);
    out << text;
    out.close();
    if (!out) throw Error(fmt::format("could not write {}", path.string()));
    const size_t runs = state.bench.selected.empty() ? state.bench.runs.size() : state.bench.selected.size();
    state.ShowSuccess(fmt::format("Exported {} benchmark run{} to {}", runs, runs == 1 ? "" : "s", path.string()));
  });
}

std::filesystem::path DefaultBenchExportPath(AppState& state) {
  return DefaultExportPath(state, true).parent_path() / "qwenvk-bench.json";
}

// --- settings -----------------------------------------------------------------------------

namespace {

int IntSetting(store::Store& db, const char* key, int fallback) {
  const auto value = db.GetSetting(key);
  if (!value) return fallback;
  try {
    return std::stoi(*value);
  } catch (const std::exception&) {
    return fallback;  // a hand-edited value that is not a number: the default, as if unset
  }
}

chat::ModelSettings ModelSettingsFrom(store::Store& db) {
  chat::ModelSettings settings;
  settings.path = db.GetSetting(kSettingModelPath).value_or("");
  if (settings.path.empty()) settings.path = chat::FindBundledModel().value_or("").string();
  settings.context = static_cast<uint32_t>(std::max(0, IntSetting(db, kSettingContext, 0)));
  settings.gpu_mem_mib = static_cast<uint64_t>(std::max(0, IntSetting(db, kSettingGpuMem, 0)));
  settings.devices = db.GetSetting(kSettingSplitDevices).value_or("");
  settings.split = db.GetSetting(kSettingSplit).value_or("");
  return settings;
}

}  // namespace

std::optional<uint32_t> SavedDevice(store::Store& db) {
  const int index = IntSetting(db, kSettingDevice, -1);
  return index >= 0 ? std::optional(static_cast<uint32_t>(index)) : std::nullopt;
}

void LoadSettingsForm(AppState& state) {
  SettingsForm& form = state.settings_form;
  form.model_path = state.db().GetSetting(kSettingModelPath).value_or("");
  form.context = IntSetting(state.db(), kSettingContext, 0);
  form.gpu_mem_mib = IntSetting(state.db(), kSettingGpuMem, 0);
  form.device = IntSetting(state.db(), kSettingDevice, -1);
  form.split_devices = state.db().GetSetting(kSettingSplitDevices).value_or("");
  form.split = state.db().GetSetting(kSettingSplit).value_or("");
  form.remote = state.db().GetSetting(kSettingEngine) == "remote";
  form.base_url = state.db().GetSetting(kSettingRemoteUrl).value_or("");
  form.remote_model = state.db().GetSetting(kSettingRemoteModel).value_or("");
  form.api_key = ApiKeyFor(state.db(), form.base_url);
  form.remote_models.clear();
  form.loaded = true;
}

bool RefreshRemoteModels(AppState& state) {
  SettingsForm& form = state.settings_form;
  if (!state.list_remote_models) {
    state.ShowError("This program cannot reach remote servers.");
    return false;
  }
  try {
    form.remote_models = state.list_remote_models(form.base_url, form.api_key);
  } catch (const Error& e) {
    form.remote_models.clear();
    state.ShowError(e.what());
    return false;
  }
  if (std::find(form.remote_models.begin(), form.remote_models.end(), form.remote_model) == form.remote_models.end()) {
    form.remote_model = form.remote_models.front();
  }
  return true;
}

store::ConversationEngine DefaultEngine(store::Store& db) {
  if (db.GetSetting(kSettingEngine) != "remote") return {};
  return {.base_url = db.GetSetting(kSettingRemoteUrl).value_or(""),
          .model = db.GetSetting(kSettingRemoteModel).value_or("")};
}

std::string ApiKeyFor(store::Store& db, const std::string& base_url) {
  return db.GetSetting(std::string(kSettingApiKeyPrefix) + base_url).value_or("");
}

bool ApplySettings(AppState& state) {
  const SettingsForm& form = state.settings_form;
  if (form.context < 0 || form.gpu_mem_mib < 0) {
    state.ShowError("Context length and GPU memory must be 0 (automatic) or more.");
    return false;
  }
  if (form.remote && (form.base_url.empty() || form.remote_model.empty())) {
    state.ShowError("A remote engine needs its base URL and a model: fill in the URL, then List models.");
    return false;
  }
  const chat::ModelSettings before = ModelSettingsFrom(state.db());
  const bool ok = Guarded(state, [&] {
    state.db().Transaction([&] {
      state.db().SetSetting(kSettingEngine, form.remote ? "remote" : "local");
      state.db().SetSetting(kSettingRemoteUrl, form.base_url);
      state.db().SetSetting(kSettingRemoteModel, form.remote_model);
      if (!form.base_url.empty()) {
        state.db().SetSetting(std::string(kSettingApiKeyPrefix) + form.base_url, form.api_key);
      }
      // A conversation with nothing in it yet takes the new engine: it is the one the user is
      // about to type into.
      if (state.conversation != 0) {
        const auto open = state.db().GetConversation(state.conversation);
        if (open && open->current_leaf == 0)
          state.db().SetConversationEngine(state.conversation, DefaultEngine(state.db()));
      }
      state.db().SetSetting(kSettingModelPath, form.model_path);
      state.db().SetSetting(kSettingContext, std::to_string(form.context));
      state.db().SetSetting(kSettingGpuMem, std::to_string(form.gpu_mem_mib));
      state.db().SetSetting(kSettingDevice, std::to_string(form.device));
      state.db().SetSetting(kSettingSplitDevices, form.split_devices);
      state.db().SetSetting(kSettingSplit, form.split);
    });
  });
  if (!ok) return false;
  const chat::ModelSettings after = ModelSettingsFrom(state.db());
  const bool changed = after.path != before.path || after.context != before.context ||
                       after.gpu_mem_mib != before.gpu_mem_mib || after.devices != before.devices ||
                       after.split != before.split;
  if (!after.path.empty() && (changed || state.chat().model_status() != chat::ModelStatus::Ready)) {
    LoadModel(state, after);
  }
  return true;
}

chat::ModelSettings ConfiguredModel(AppState& state) {
  return ModelSettingsFrom(state.db());
}

// --- choosing a model ---------------------------------------------------------------------

void OpenModelPicker(AppState& state, Dialog from) {
  // Settings' own form holds what the user is editing there; elsewhere the stored one is applied.
  if (from != Dialog::Settings || !state.settings_form.loaded) LoadSettingsForm(state);
  const std::string& current = state.settings_form.model_path;
  state.model_picker.Open(current.empty() ? std::filesystem::current_path()
                                          : std::filesystem::path(current).parent_path());
  state.model_picker_from = from;
  state.dialog = Dialog::ModelPicker;
}

bool OpenChosenModel(AppState& state, const std::filesystem::path& model) {
  state.settings_form.model_path = model.string();
  if (state.model_picker_from == Dialog::Settings) {
    state.dialog = Dialog::Settings;
    return true;
  }
  state.dialog = Dialog::None;
  const bool applied = ApplySettings(state);
  state.settings_form.loaded = false;  // Settings reads the store again when it opens
  return applied;
}

void CancelModelPicker(AppState& state) {
  if (state.model_picker_from != Dialog::Settings) state.settings_form.loaded = false;
  state.dialog = state.model_picker_from;
}

// --- the welcome --------------------------------------------------------------------------

void ShowWelcomeOnFirstStart(AppState& state) {
  if (!state.db().GetSetting(kSettingModelPath).value_or("").empty()) return;
  if (state.db().GetSetting(kSettingWelcomeShown) || !chat::FindBundledModel()) return;
  state.dialog = Dialog::Welcome;
  if (!state.db().read_only()) Guarded(state, [&] { state.db().SetSetting(kSettingWelcomeShown, "1"); });
}

void StartChatting(AppState& state) {
  state.dialog = Dialog::None;
  state.focus_draft = true;
}

// --- loading a model ----------------------------------------------------------------------

void LoadModel(AppState& state, const chat::ModelSettings& model) {
  state.unfinished_load.reset();
  // A read-only database cannot keep the record; the model loads all the same.
  if (!state.db().read_only()) {
    state.model_load_recorded = Guarded(state, [&] { state.db().SetSetting(kSettingLoadingModel, model.path); });
  }
  state.chat().LoadModel(model);
}

void ShowSessionErrors(AppState& state) {
  ReportSessionError(state);
}

void TrackModelLoad(AppState& state) {
  if (!state.model_load_recorded) return;
  if (state.session && state.chat().model_status() == chat::ModelStatus::Loading) return;
  state.model_load_recorded = false;
  Guarded(state, [&] { state.db().DeleteSetting(kSettingLoadingModel); });
}

std::optional<std::string> UnfinishedModelLoad(store::Store& db) {
  return db.GetSetting(kSettingLoadingModel);
}

std::string UnfinishedLoadMessage(const std::string& model_path) {
  return fmt::format("QwenVK closed while loading {} last time, so it was not loaded automatically.",
                     std::filesystem::path(model_path).filename().string());
}

bool RetryUnfinishedLoad(AppState& state) {
  if (!state.unfinished_load) {
    state.ShowError("There is no interrupted model load to retry.");
    return false;
  }
  chat::ModelSettings model;
  if (!Guarded(state, [&] { model = ConfiguredModel(state); })) return false;
  model.path = *state.unfinished_load;
  LoadModel(state, model);
  return true;
}

void ChooseAnotherModel(AppState& state) {
  LoadSettingsForm(state);
  state.dialog = Dialog::Settings;
}

// --- database problems --------------------------------------------------------------------

bool OpenDatabase(AppState& state, bool read_only) {
  try {
    state.store = std::make_unique<store::Store>(state.database_path,
                                                 store::Store::Options{.read_only = read_only, .single_writer = true});
    state.database_problem.reset();
    return true;
  } catch (const store::StoreError& e) {
    state.database_problem = DatabaseProblem{e.kind(), e.what(), {}};
    return false;
  }
}

namespace {

// `<database>.<label>-<Unix seconds>`: a name beside the database that no earlier copy has.
std::filesystem::path StampedSibling(const std::filesystem::path& database, std::string_view label) {
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  return database.string() + fmt::format(".{}-{}", label, seconds);
}

}  // namespace

bool MoveDatabaseAsideAndStartFresh(AppState& state) {
  const std::filesystem::path aside = StampedSibling(state.database_path, "damaged");
  std::error_code ec;
  std::filesystem::rename(state.database_path, aside, ec);
  if (ec) {
    state.database_problem->message =
        fmt::format("could not move {} aside: {}", state.database_path.string(), ec.message());
    return false;
  }
  // The WAL and shared-memory files belong to the old database (its latest commits may be in the
  // WAL); they go with it, or the new database would open beside them.
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::filesystem::path side = state.database_path.string() + suffix;
    if (!std::filesystem::exists(side, ec)) continue;
    std::filesystem::rename(side, aside.string() + suffix, ec);
    if (ec) {
      state.database_problem->message = fmt::format("could not move {} aside: {}", side.string(), ec.message());
      return false;
    }
  }
  if (!OpenDatabase(state, false)) return false;
  state.ShowSuccess(fmt::format("The old database was kept as {}", aside.string()));
  return true;
}

bool CopyDatabaseFile(AppState& state) {
  const std::filesystem::path copy = StampedSibling(state.database_path, "backup");
  std::error_code ec;
  std::filesystem::copy_file(state.database_path, copy, ec);
  // The latest commits may still be in the WAL: it is copied beside the copy, where SQLite finds it.
  const std::filesystem::path wal = state.database_path.string() + "-wal";
  if (!ec && std::filesystem::exists(wal, ec)) std::filesystem::copy_file(wal, copy.string() + "-wal", ec);
  if (ec) {
    state.database_problem->message = fmt::format("could not copy {}: {}", state.database_path.string(), ec.message());
    return false;
  }
  state.database_problem->integrity_report = fmt::format("A copy was saved as {}", copy.string());
  return true;
}

bool BackUpDatabase(AppState& state) {
  const std::filesystem::path copy = StampedSibling(state.database_path, "backup");
  return Guarded(state, [&] {
    state.db().Backup(copy);
    state.ShowSuccess(fmt::format("Backed up to {}", copy.string()));
  });
}

void CheckDatabaseIntegrity(AppState& state) {
  try {
    store::Store reader(state.database_path, store::Store::Options{.read_only = true});
    state.database_problem->integrity_report = "PRAGMA integrity_check:\n" + reader.IntegrityCheck();
  } catch (const Error&) {
    state.database_problem->integrity_report =
        "PRAGMA integrity_check could not run: SQLite cannot read this file as a database. Its bytes are "
        "untouched: \"Make a copy\" keeps them, \"Keep it aside\" starts a new database beside it.";
  }
}

}  // namespace qvk::ui
