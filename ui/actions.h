#pragma once
// What the user can do, as functions: the panels' buttons and shortcuts and the --script driver
// call the same ones, so a scripted test exercises the code a click does. Each reports failure in
// the banner (state.ShowError; the UI shows it) and returns false; none throws.
#include <filesystem>
#include <optional>
#include <string>

#include "model/attention_capture.h"
#include "store/store.h"
#include "ui/app_state.h"

namespace qvk::ui {

// --- conversations ---
store::Id NewConversation(AppState& state);
// Also remembered in the settings, so that the next start reopens it.
void SelectConversation(AppState& state, store::Id conversation);
// At start: the conversation that was open when the app last ran, unless it is gone (then none).
void ReopenLastConversation(AppState& state);
bool RenameConversation(AppState& state, store::Id conversation, const std::string& title);
bool TogglePinned(AppState& state, store::Id conversation);
bool DeleteConversation(AppState& state, store::Id conversation);  // undoable until quit
bool UndoDelete(AppState& state);
// Asks for the hits of state.search in the store as it is now; the worker answers in its own time
// (the sidebar asks every frame; asking again for the same is free).
SearchWorker& RequestSearch(AppState& state);

// --- messages ---
bool SendDraft(AppState& state);  // creates a conversation when none is selected
bool Regenerate(AppState& state, store::Id assistant_message);
bool SubmitEdit(AppState& state);  // state.editing / state.edit_text
bool ContinueReply(AppState& state, store::Id assistant_message);
// Shows the sibling `delta` steps away (-1: previous, +1: next) of `message`, and its newest leaf.
bool SwitchBranch(AppState& state, store::Id message, int delta);
void StopGeneration(AppState& state);
void CopyToClipboard(const std::string& text);

// --- thinking (the chat template's enable_thinking: Qwen3 thinks before it answers) ---
// The open conversation's thinking switch (with none open, a new conversation's, as sending makes
// one). Refused when its model has no such switch (ChatSession::Thinking).
bool SetThinking(AppState& state, bool enable_thinking);
bool ToggleThinking(AppState& state);  // Ctrl+T
// A reply's thinking shown open, or folded (as every reply's is at first) above its answer.
void SetThinkingOpen(AppState& state, store::Id message, bool open);

// --- files ---
bool ExportConversation(AppState& state, const std::filesystem::path& path, bool json);
bool ImportConversation(AppState& state, const std::filesystem::path& path);
// Where an export of the conversation goes unless the user types another path.
std::filesystem::path DefaultExportPath(AppState& state, bool json);

// --- attention maps (the attention panel) ---
// Opens the panel on `message` and captures its attention over the conversation as the model read
// it (chat::MessageAttention): first its tokens, then the view's map and every layer's thumbnails.
bool OpenAttention(AppState& state, store::Id message);
void CloseAttention(AppState& state);
// Shows another layer or heads; captured unless already on screen.
bool ShowAttentionView(AppState& state, const AttentionView& view);
// Mutes key 0 in the view's map and the thumbnails (captured again, muted on the GPU).
void SetAttentionSinkMuted(AppState& state, bool muted);
void SetAttentionThreshold(AppState& state, float threshold);
// Each frame while the panel is open: takes the live reply's rows (the panel follows a reply that
// starts while it is open) and a finished capture, and asks for the view's map when the one in is
// of another view.
void TrackAttention(AppState& state);
// The map a view asks for over `tokens` tokens: whole up to kAttentionMapSide tokens, pooled
// (cells of the max) beyond.
inline constexpr uint32_t kAttentionMapSide = 1024;
inline constexpr uint32_t kAttentionThumbnailSide = 24;  // values a side of an overview thumbnail
inline constexpr float kAttentionLogDecades = 3;         // the log scale's range below its top
AttentionRequest AttentionViewRequest(const ModelConfig& config, const AttentionView& view, uint32_t tokens);
// The view's layer and heads, whole (what a live row is reduced to).
AttentionRequest AttentionViewHeads(const ModelConfig& config, const AttentionView& view);
// The tokens the map on screen counts: the capture's, or the live reply's until it is in.
const chat::MessageAttention* AttentionTokensOnScreen(const AttentionPanel& panel);
// Chooses token `token` of the sequence on screen (none: no choice) and the way it shades the
// others; false (and the banner says why) past the last token.
bool SelectAttentionToken(AppState& state, std::optional<uint32_t> token, TokenDirection direction);
// The chosen token `delta` tokens on (Alt+Left and Alt+Right), kept within the sequence.
void MoveAttentionToken(AppState& state, int delta);
// Each token's shade from the chosen one: its row (AttendsTo) or column (AttendedBy) of the map on
// screen (a pooled map's cell holding both); -1 where the map has none (later tokens, or rows the
// map does not hold). Empty without a choice or a map.
std::vector<float> AttentionTokenShading(const AttentionPanel& panel);
// The heatmap's zoom and pan (the mouse wheel, a drag, "Fit": a span of 0).
void ZoomAttention(AppState& state, HeatmapZoom zoom);
inline constexpr float kAttentionMinZoomSpan = 8;  // tokens a side when zoomed in all the way
// The zoom as drawn: the whole map for a span of 0 or past the map, else at least
// kAttentionMinZoomSpan tokens a side and within the map.
HeatmapZoom ClampedZoom(const AttentionPanel& panel);
// A pooled map zoomed in past its cells: the finer capture of the rows in view (none until it is
// in, or while the map is as fine as the screen), whether it is in (or none is needed), and the
// request for it, which the panel makes once the zoom stays still (a capture at a time).
const AttentionMap* AttentionDetailInView(const AppState& state);
bool AttentionDetailReady(const AppState& state);
void RequestAttentionDetail(AppState& state);
enum class AttentionFormat { Png, Csv, Npy };
// The map on screen (state.attention.shown) as a file: PNG in the panel's colour scale, CSV, NPY.
bool ExportAttention(AppState& state, const std::filesystem::path& path, AttentionFormat format);
std::filesystem::path DefaultAttentionExportPath(AppState& state, AttentionFormat format);

// --- benchmarks (the benchmark workbench) ---
void OpenBenchmark(AppState& state, bool open);
// Reads the stored runs again when the store changed since they were read, and the last selected
// run whole (its kernel times) when it is another.
void RefreshBenchRuns(AppState& state);
// The form's benchmark on the chat's worker (after any reply under way); saved when it ends.
bool StartBenchmark(AppState& state);
void CancelBenchmark(AppState& state);
// Selects a run for the comparison (last in the order picked), or leaves it out.
void ToggleBenchRun(AppState& state, store::Id run);
void ClearBenchSelection(AppState& state);
// A qwenvk-bench or llama-bench JSON file into the store; a file that is not one changes nothing
// and the banner says what is wrong with it. The imported runs are selected.
bool ImportBenchRuns(AppState& state, const std::filesystem::path& path);
// The selected runs (all runs when none is) as a qwenvk-bench file.
bool ExportBenchRuns(AppState& state, const std::filesystem::path& path);
std::filesystem::path DefaultBenchExportPath(AppState& state);

// --- settings ---
void LoadSettingsForm(AppState& state);
bool ApplySettings(AppState& state);  // persists the form and reloads the model when it changed
// Fills the form's model choices from its endpoint's /v1/models (the first one chosen if none is).
bool RefreshRemoteModels(AppState& state);
// The engine new conversations get: this computer, or the remote endpoint of the settings.
store::ConversationEngine DefaultEngine(store::Store& db);
// The API key saved for the server at `base_url` (empty: none).
std::string ApiKeyFor(store::Store& db, const std::string& base_url);
// The model settings stored in the database; with no model chosen, the bundled demo model (the
// path is empty when that is missing too).
chat::ModelSettings ConfiguredModel(AppState& state);
// The device stored in the settings; none for "automatic".
std::optional<uint32_t> SavedDevice(store::Store& db);

// --- choosing a model ---
// Opens the model picker at the model in the settings. `from` is where it opens from (Settings'
// Browse, the welcome, File > Open model...): Cancel goes back there.
void OpenModelPicker(AppState& state, Dialog from);
// The picker's choice. Opened from Settings it fills the form, applied with the rest; from
// anywhere else the model is saved in the settings and loaded at once.
bool OpenChosenModel(AppState& state, const std::filesystem::path& model);
void CancelModelPicker(AppState& state);

// --- the welcome ---
// At start, when no model was chosen and the bundled demo model opens: the welcome, which says
// what that model is and how to open a real one; once per database.
void ShowWelcomeOnFirstStart(AppState& state);
// The welcome's "Start chatting": it closes, the cursor in the message box.
void StartChatting(AppState& state);

// --- loading a model ---
// Every load goes through here: it is recorded in the settings until it ends, so that a model
// that crashes the program is not loaded again at every start.
void LoadModel(AppState& state, const chat::ModelSettings& model);
// Each frame (and once the session is gone): clears the record of a load that ended.
void TrackModelLoad(AppState& state);
// Each frame: what the chat's worker failed at on its own (a reply whose server went away) in the
// banner, as an action's refusal is; otherwise nothing would say why the reply stopped.
void ShowSessionErrors(AppState& state);
// The model whose load was under way when QwenVK last closed, if it never ended.
std::optional<std::string> UnfinishedModelLoad(store::Store& db);
std::string UnfinishedLoadMessage(const std::string& model_path);
// The choices UnfinishedLoadMessage offers: load it after all, or open the settings to pick another.
bool RetryUnfinishedLoad(AppState& state);
void ChooseAnotherModel(AppState& state);

// --- database problems ---
bool OpenDatabase(AppState& state, bool read_only);
bool MoveDatabaseAsideAndStartFresh(AppState& state);
// A copy of the database file beside it (`<name>.backup-<time>`), byte for byte, whatever its state.
bool CopyDatabaseFile(AppState& state);
// A consistent copy of the open database through SQLite's online backup.
bool BackUpDatabase(AppState& state);
void CheckDatabaseIntegrity(AppState& state);

// App settings keys in the store's settings table.
inline constexpr const char* kSettingModelPath = "model.path";
inline constexpr const char* kSettingContext = "model.context";
inline constexpr const char* kSettingGpuMem = "model.gpu_mem_mib";
inline constexpr const char* kSettingDevice = "device.index";
// A model split by layers across devices (chat::ModelSettings::devices and split).
inline constexpr const char* kSettingSplitDevices = "model.split_devices";
inline constexpr const char* kSettingSplit = "model.split";
// Engines: "remote" when new conversations go to the endpoint below; API keys are saved per URL,
// under kSettingApiKeyPrefix + the URL, so each conversation's server gets its own.
inline constexpr const char* kSettingEngine = "engine.kind";
inline constexpr const char* kSettingRemoteUrl = "engine.remote_url";
inline constexpr const char* kSettingRemoteModel = "engine.remote_model";
inline constexpr const char* kSettingApiKeyPrefix = "engine.api_key:";
inline constexpr const char* kSettingOpenConversation = "ui.open_conversation";
// Set once the welcome was shown (its value is unused).
inline constexpr const char* kSettingWelcomeShown = "ui.welcome_shown";
// The path of the model being loaded, from before the load starts until it ends.
inline constexpr const char* kSettingLoadingModel = "model.loading";

}  // namespace qvk::ui
