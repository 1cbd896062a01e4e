#pragma once
// Everything the desktop app's panels draw from. Conversations and messages are never copied
// here: panels read them from the store each frame (SQLite answers from its page cache in
// microseconds) and the live reply from the chat session; what lives here is only what is on
// screen: the selection, text being typed, which dialog is open.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "chat/chat_session.h"
#include "store/store.h"
#include "ui/file_picker.h"
#include "ui/fonts.h"

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
  int device = -1;  // -1: automatic
};

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

enum class Dialog { None, Settings, ConversationSettings, Export, Import, Rename, ModelPicker };

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
  // The conversation settings dialog's form: which conversation, and its values while edited.
  std::optional<std::pair<store::Id, store::ConversationSettings>> conversation_form;
  FilePicker model_picker;
  Banner banner;
  bool focus_draft = true;
  bool focus_search = false;
  bool quit = false;

  void ShowError(std::string text) { banner = {Banner::Kind::Error, std::move(text)}; }
  void ShowSuccess(std::string text) { banner = {Banner::Kind::Success, std::move(text)}; }
  store::Store& db() { return *store; }
  chat::ChatSession& chat() { return *session; }
};

}  // namespace qvk::ui
