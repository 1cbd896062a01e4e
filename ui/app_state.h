#pragma once
// Everything the desktop app's panels draw from: what is on screen (the selection, text being
// typed, which dialog is open), the branch on screen as last read from the store (read again
// when the store's revision changes, never per frame: a branch can be 100,000 messages), and the
// search worker. The live reply comes from the chat session.
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "chat/chat_session.h"
#include "chat/live_attention.h"
#include "store/store.h"
#include "ui/branch_view.h"
#include "ui/file_picker.h"
#include "ui/fonts.h"
#include "ui/search_worker.h"
#include "ui/texture.h"

namespace qvk::ui {

class Window;

// A database that could not be opened, and the ways out the app offers.
struct DatabaseProblem {
  store::StoreErrorKind kind = store::StoreErrorKind::Io;
  std::string message;
  std::string integrity_report;  // filled by "Check integrity"
};

// The app settings form: edited here, written to the store and applied by "Apply".
struct SettingsForm {
  bool loaded = false;  // filled from the store when the panel opens
  std::string model_path;
  int context = 0;
  int gpu_mem_mib = 0;
  int device = -1;            // -1: automatic
  std::string split_devices;  // "0,1": the model split by layers across these; empty: the app's device
  std::string split;          // "3,1": each one's share of the layers; empty: by free memory
  // Engines: where new conversations' replies come from.
  bool remote = false;  // false: this computer
  std::string base_url;
  std::string api_key;
  std::string remote_model;
  std::vector<std::string> remote_models;  // the endpoint's /v1/models, once asked
};

// Lists the models of an OpenAI-compatible server (base URL, API key); throws Error. Given by the
// program, which holds the HTTP client (the UI layer does not).
using RemoteModelLister = std::function<std::vector<std::string>(const std::string&, const std::string&)>;

// A conversation deleted a moment ago: "Undo" restores it until the app quits.
struct PendingUndo {
  store::Id conversation = 0;
  std::string title;
};

// What the app last has to say, over the chat until dismissed or replaced: an error (what went
// wrong and what to do) or a success (what was done). They look different.
struct Banner {
  enum class Kind { Error, Success };
  Kind kind = Kind::Error;
  std::string text;
};

// What the last frame cost, for tests: the window must do work bounded by what is on screen.
struct FrameCounts {
  int messages_laid_out = 0;
  uint64_t store_statements = 0;  // run through the app's store during the frame, by any thread
  // Something on screen waits for a background thread (search hits, a token count): the next
  // frames come without waiting for input, so the answer shows when it is in.
  bool awaiting_results = false;
  bool messages_at_bottom = false;  // the chat showed the end of its branch (scrolled all the way down)
};

// Which heads of a layer the attention panel's map shows: one head, the mean or max over all of
// them, or the mean or max over the query heads that share one KV head (a GQA group).
enum class AttentionHeads { One, Mean, Max, GroupMean, GroupMax };
struct AttentionView {
  uint32_t layer = 0;
  AttentionHeads heads = AttentionHeads::One;
  uint32_t index = 0;  // the head (One) or the KV head (GroupMean, GroupMax)
  // Key 0 (the attention sink) left out of each head's row and the row renormalized, on the GPU
  // before heads and cells are reduced (AttentionRequest::mute_sink).
  bool mute_sink = false;
  bool operator==(const AttentionView&) const = default;
};

// Which way a token chosen in the text shades the others: by how much it attends to each earlier
// token (its row of the map), or by how much each later token attends to it (its column).
enum class TokenDirection { AttendsTo, AttendedBy };

// The part of the map the heatmap shows, in tokens from the map's first query row and first key:
// `span` tokens a side (0: the whole map, "fit").
struct HeatmapZoom {
  float row = 0, col = 0, span = 0;
  bool operator==(const HeatmapZoom&) const = default;
};

// What the heatmap's texture was last drawn from, so it is uploaded again only when that changes.
struct HeatmapTextureKey {
  uint64_t revision = 0;
  uint64_t detail_revision = 0;
  HeatmapZoom zoom;
  uint32_t pixels = 0;
  bool log_scale = false;
  bool operator==(const HeatmapTextureKey&) const = default;
};

// The reply being written while the attention panel follows it: its tokens and the view's rows as
// the chat session's live feed hands them over, and the map they make (a band of query rows from
// the prompt's last token on), until the finished reply's capture replaces it.
struct LiveAttentionMap {
  uint64_t reply = 0;             // the feed's count of the reply
  chat::MessageAttention tokens;  // message_begin: the prompt's tokens
  AttentionView view;             // the rows' view (a new view starts its rows again)
  uint32_t first_position = 0;    // the query of rows[0]
  std::vector<std::vector<float>> rows;
  std::optional<AttentionMap> map;  // the rows as a map, made again when rows arrive
  bool ended = false;               // the reply is done: its capture is asked for
};

// The attention panel beside the chat: the message whose attention is open, how it is shown, and
// the maps its last capture brought (captured again when the view asks for others; nothing is
// kept after the panel closes).
struct AttentionPanel {
  store::Id message = 0;  // 0: closed
  AttentionView view;
  bool log_scale = false;
  float threshold = 0;  // values below it shown (and exported) as 0
  // The message's tokens (the maps' rows and columns) once the first capture is in.
  std::optional<chat::MessageAttention> tokens;
  std::optional<AttentionMap> map;  // `captured_view`'s map, as captured
  AttentionView captured_view;
  AttentionView requested_view;          // what the capture under way brings
  std::optional<AttentionMap> shown;     // `map` with the threshold applied
  uint64_t shown_revision = 0;           // counts changes of `shown`
  std::vector<AttentionMap> thumbnails;  // per layer, a pooled plane per head
  uint64_t capture_gpu_bytes = 0;        // what the last capture of maps held on the GPU
  bool capturing = false;                // a capture is queued or running
  // While the panel is open, replies feed it their rows (ChatSession::SetLiveAttention), and the
  // panel follows the reply being written.
  std::shared_ptr<chat::LiveAttention> live_feed;
  uint64_t replies_seen = 0;
  std::optional<LiveAttentionMap> live;
  // The token chosen in the chat text (a sequence position), and which way it shades the others.
  std::optional<uint32_t> token;
  TokenDirection direction = TokenDirection::AttendsTo;
  // The map's cell under the mouse, or the one a script points at: (query row, key column).
  std::optional<std::pair<uint32_t, uint32_t>> hover;
  bool hover_from_mouse = false;
  HeatmapZoom zoom;
  // Where the map is pooled (past kAttentionMapSide tokens) coarser than the zoomed heatmap shows
  // it: the rows about the view captured again, reduced on the GPU to the cells the screen needs.
  std::optional<AttentionMap> detail;
  std::optional<AttentionRequest> requested_detail;  // what the capture under way brings, if a detail
  uint64_t detail_revision = 0;
  uint32_t heatmap_pixels = 0;     // the heatmap's side at the last frame, in framebuffer pixels
  std::optional<float> scroll_to;  // 0 top .. 1 bottom of the panel, at the next frame (the script's)
  // The heatmap as the screen shows it, a texel a pixel (made at the first draw, kept while the app runs).
  std::unique_ptr<Texture> texture;
  HeatmapTextureKey texture_key;
};

// The benchmark workbench (benchmark_panel.cpp): the run form, the table's filters, order and
// selection, the chart shown, and the store's runs as last read (read again when the store's
// revision changes, never per frame).
enum class BenchChart { Speed, Depth, Kernels, Roofline, Compare };
enum class BenchColumn { Id, Measured, Source, Device, Model, Weights };
struct BenchForm {
  std::string model_path;  // empty: the loaded model
  int prompt = 16, generate = 4, depth = 0, repetitions = 2;
  bool kernels = true, device_peak = true;
};
struct BenchPanel {
  bool open = false;
  BenchForm form;
  std::string device_filter, model_filter, weights_filter;  // substrings, in any case
  BenchColumn sort = BenchColumn::Id;
  bool ascending = false;
  std::vector<store::Id> selected;  // in the order picked: the first is the comparison's baseline
  BenchChart chart = BenchChart::Speed;
  size_t detail_row = 0;  // the row of `detail` whose kernels and roofline show
  std::string file;       // the import / export dialog's path
  // Every stored run with its rows (no kernel times), and whole the run the kernel chart and the
  // roofline show (the last selected, else the last saved), as of the store's `revision`.
  uint64_t revision = UINT64_MAX;
  std::vector<store::BenchRun> runs;
  std::optional<store::BenchRun> detail;
};

enum class Dialog {
  None,
  Settings,
  ConversationSettings,
  Export,
  Import,
  Rename,
  ModelPicker,
  Welcome,
  BenchImport,
  BenchExport
};

struct AppState {
  Window& window;
  Fonts fonts;
  GlyphCoverage glyphs;  // code points the text on screen needs beyond the font atlas
  std::filesystem::path database_path;
  std::unique_ptr<store::Store> store;         // null while the database problem is unresolved
  std::unique_ptr<chat::ChatSession> session;  // exists once the store does
  std::optional<DatabaseProblem> database_problem;

  // --- on screen ---
  store::Id conversation = 0;  // selected; 0: none
  std::string draft;           // the message being typed
  std::string search;          // sidebar search words; empty: the list
  store::Id editing = 0;       // message being edited in place; 0: none
  std::string edit_text;
  std::optional<PendingUndo> undo;
  Dialog dialog = Dialog::None;
  std::string dialog_text;   // rename title, export or import path
  bool export_json = false;  // the export dialog's format
  SettingsForm settings_form;
  RemoteModelLister list_remote_models;
  // The conversation settings dialog's form: which conversation, and its values while edited.
  std::optional<std::pair<store::Id, store::ConversationSettings>> conversation_form;
  FilePicker model_picker;
  // Where the model picker was opened: from Settings the choice fills the form, from anywhere
  // else it opens at once (OpenChosenModel); Cancel goes back there.
  Dialog model_picker_from = Dialog::Settings;
  Banner banner;
  bool focus_draft = true;
  bool focus_search = false;
  bool quit = false;
  // The model whose load was under way when QwenVK last closed (it may crash the program), so it
  // was not loaded at this start; cleared by Retry or another choice.
  std::optional<std::string> unfinished_load;

  bool model_load_recorded = false;  // kSettingLoadingModel is set for the load under way

  BranchView branch;
  std::set<store::Id> thinking_open;            // replies whose thinking is shown; every other reply's is folded
  std::optional<float> scroll_messages_to;      // 0 top .. 1 bottom, at the next frame (the script's scroll)
  std::unique_ptr<SearchWorker> search_worker;  // made at the first search of a database
  AttentionPanel attention;
  BenchPanel bench;
  std::string program_version, program_commit;  // stored with each benchmark run
  FrameCounts last_frame;
  FrameCounts this_frame;

  void ShowError(std::string text) { banner = {Banner::Kind::Error, std::move(text)}; }
  void ShowSuccess(std::string text) { banner = {Banner::Kind::Success, std::move(text)}; }
  store::Store& db() { return *store; }
  chat::ChatSession& chat() { return *session; }
};

}  // namespace qvk::ui
