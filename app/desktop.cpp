// `qwenvk` without a subcommand: the desktop app. Opens the conversation store, the window (on
// the device that also runs the model), loads the configured model in the background, and runs
// the frame loop until the window closes, then stops any reply and tears down in order.
#include <fmt/format.h>
#include <imgui.h>
#include <spdlog/spdlog.h>

#include "app/commands.h"
#include "chat/chat_session.h"
#include "qwenvk_version.h"
#include "server/remote_engine.h"
#include "ui/actions.h"
#include "ui/fonts.h"
#include "ui/panels.h"
#include "ui/script.h"
#include "ui/window.h"

namespace qvk::app {
namespace {

// The device saved in the settings; a database that cannot be read leaves the choice automatic.
std::optional<uint32_t> SavedDevice(store::Store* store) {
  if (!store) return std::nullopt;
  try {
    return ui::SavedDevice(*store);
  } catch (const Error& e) {
    spdlog::warn("ignoring the saved device setting: {}", e.what());
    return std::nullopt;
  }
}

// The chat session exists once the store does (at start, or after the user resolved a database
// problem); the first time, the model loads: --model, else the one in the settings, else the
// bundled demo model, with the welcome the first time.
void StartSession(ui::AppState& state, const DesktopOptions& options) {
  state.session = std::make_unique<chat::ChatSession>(*state.store, state.window.device());
  // Remote engines: the HTTP client lives beside the UI, so the program hands it to both.
  store::Store& db = *state.store;
  state.session->SetReplySources([&db](const store::ConversationEngine& engine) {
    return std::make_unique<server::RemoteEngine>(
        server::RemoteEndpoint{.base_url = engine.base_url, .api_key = ui::ApiKeyFor(db, engine.base_url)},
        engine.model);
  });
  state.list_remote_models = [](const std::string& base_url, const std::string& api_key) {
    return server::ListRemoteModels({.base_url = base_url, .api_key = api_key});
  };
  chat::ModelSettings model;
  try {
    model = ui::ConfiguredModel(state);
    if (model.path.empty() && !options.model) {
      state.ShowError("No model is chosen and the bundled demo model is missing: choose a model in File > Settings.");
    }
  } catch (const Error& e) {
    state.ShowError(e.what());
  }
  // Saved absolute: the next start may be from another folder.
  const std::optional<std::string> model_path =
      options.model ? std::optional(std::filesystem::absolute(*options.model).string()) : std::nullopt;
  if (model_path) model.path = *model_path;
  try {
    if (!state.store->read_only()) {
      state.store->PurgeDeleted();
      if (model_path) state.store->SetSetting(ui::kSettingModelPath, *model_path);
    }
  } catch (const Error& e) {
    state.ShowError(e.what());  // a locked database: the model still loads; reading and typing work
  }
  std::optional<std::string> unfinished;
  try {
    ui::ReopenLastConversation(state);
    unfinished = ui::UnfinishedModelLoad(*state.store);
    if (!options.model) ui::ShowWelcomeOnFirstStart(state);
  } catch (const Error& e) {
    state.ShowError(e.what());
  }
  if (model.path.empty()) return;
  // The same model was being loaded when the app last went away: it may be what killed it.
  if (unfinished == model.path) {
    state.unfinished_load = model.path;
  } else {
    ui::LoadModel(state, model);
  }
}

// Whether this frame saw the mouse move or click, a key go down, or text typed.
bool HadInput() {
  const ImGuiIO& io = ImGui::GetIO();
  if (io.MouseDelta.x != 0 || io.MouseDelta.y != 0 || io.MouseWheel != 0 || ImGui::IsAnyMouseDown()) return true;
  for (const float down_for : io.KeysDownDuration) {
    if (down_for >= 0) return true;
  }
  return false;
}

}  // namespace

int RunDesktop(const DesktopOptions& options) {
  const std::filesystem::path database =
      options.database ? std::filesystem::path(*options.database) : store::Store::DefaultPath();
  std::optional<ui::ScriptRunner> script;
  if (options.script) script.emplace(*options.script);

  // Opened before the window: the saved device decides which GPU the window is made on.
  std::unique_ptr<store::Store> store;
  std::optional<ui::DatabaseProblem> problem;
  try {
    store = std::make_unique<store::Store>(database, store::Store::Options{.single_writer = true});
  } catch (const store::StoreError& e) {
    problem = ui::DatabaseProblem{e.kind(), e.what(), {}};
    spdlog::error("{}", e.what());
  }

  ui::Window window(ui::WindowOptions{.device = options.device, .preferred_device = SavedDevice(store.get())});
  const float scale = window.content_scale();
  ui::Fonts fonts = ui::LoadFonts(scale);
  window.RebuildFonts();
  ImGuiStyle& style = ImGui::GetStyle();
  style.ScaleAllSizes(scale);
  // Dialogs over the chat: opaque, so the text underneath does not show through.
  style.Colors[ImGuiCol_WindowBg].w = 1.0f;
  style.Colors[ImGuiCol_PopupBg].w = 1.0f;

  ui::AppState state{.window = window,
                     .fonts = fonts,
                     .database_path = database,
                     .store = std::move(store),
                     .database_problem = problem};
  state.program_version = QWENVK_VERSION;
  state.program_commit = QWENVK_GIT_COMMIT;
  state.ShowError(window.device_note());
  int prompt_frames = 0;
  while (!state.quit && !window.ShouldClose()) {
    if (state.store && !state.session) StartSession(state, options);
    // Event driven: idle costs nothing; a streaming reply, a loading model or a result awaited
    // from a background thread (search, token count) redraws at 30 Hz;
    // a script that is not waiting runs as fast as frames go.
    const bool busy =
        state.session && (state.session->generating() || state.session->model_status() == chat::ModelStatus::Loading ||
                          state.last_frame.awaiting_results);
    double wait = busy ? 1.0 / 30 : 0.5;
    if (prompt_frames > 0 || (script && !script->waiting())) wait = 0;
    if (prompt_frames > 0) --prompt_frames;
    if (script) script->Step(state);
    window.BeginFrame(wait);
    state.this_frame = {};
    const uint64_t statements_before = state.store ? state.store->statements_run() : 0;
    ui::DrawApp(state);
    if (state.store) state.this_frame.store_statements = state.store->statements_run() - statements_before;
    state.last_frame = state.this_frame;
    window.EndFrame();
    if (state.session) {
      ui::TrackModelLoad(state);
      ui::ShowSessionErrors(state);
    }
    // ImGui shows a window opened by a click or a key from its second frame, and text that moved
    // settles over a few: after any input the next frames come at once, not at the next event.
    if (HadInput()) prompt_frames = 3;
    if (state.glyphs.TakeNewGlyphs()) {
      // New CJK or Hangul text on screen: rebuild the atlas with its glyphs (between frames, as
      // the old fonts' pointers die with it).
      ImGui::GetIO().Fonts->Clear();
      state.fonts = ui::LoadFonts(scale, state.glyphs.ranges());
      window.RebuildFonts();
    }
  }
  state.session.reset();  // stops the reply (committing what streamed) before the device goes
  // A load still running was waited for: it ended, whichever way.
  if (state.store) ui::TrackModelLoad(state);
  if (script && script->failed()) {
    std::fprintf(stderr, "qwenvk: %s\n", script->error().c_str());
    return 2;
  }
  return 0;
}

}  // namespace qvk::app
