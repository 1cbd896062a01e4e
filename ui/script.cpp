// Sections: helpers (keys, names, the branch on screen, dump, settings, attention, benchmarks) / reading a script /
// stepping through it / the commands
//
// Script commands (arguments are the rest of the line; "\n" in text is a newline):
//   wait-model [failed]        until the model is loaded (or, with `failed`, has failed to)
//   wait-reply                 until no reply is being generated
//   wait-tokens N              until the live reply has N tokens (or ended)
//   frames N                   render N frames
//   type TEXT                  characters into the focused widget (as GLFW's char callback would)
//   key COMBO                  a tap: every key pressed, then released in reverse order, all
//                              before the next frame; e.g. enter, shift+enter, ctrl+a, escape
//   send TEXT                  type into the draft and send (what Enter does)
//   new-chat | select TITLE | search WORDS | rename TITLE | pin | delete | undo
//                              (search: until the search worker has the hits)
//   wait-search                until the hits for the words in the search box are in
//   wait-branch                until the chat shows the selected conversation as the store holds it
//   scroll FRACTION            the messages to 0 (top) .. 1 (bottom)
//   retry-model | choose-model the choices after a model load that never ended
//   regenerate | continue      on the last assistant message of the branch on screen
//   edit INDEX TEXT            edit the INDEX-th message (0-based) of the branch on screen
//   branch INDEX prev|next     switch that message to its previous / next sibling
//   stop                       Esc's action
//   thinking on|off            the conversation's thinking switch (its checkbox; Ctrl+T toggles it)
//   thinking open INDEX | fold INDEX   the thinking of the INDEX-th message of the branch on screen
//                              shown or folded (a click on its header)
//   set NAME VALUE             a conversation setting: temperature, top_k, top_p, min_p,
//                              repetition_penalty, seed, max_new_tokens, system_prompt
//   engine remote URL [KEY]    Settings > Engines: a remote server, its models listed (List
//                              models; the first chosen, or the one chosen before), applied
//   engine model NAME          Engines' model choice among those listed, applied
//   engine local               Engines' "This computer", applied
//   split DEVICES [SHARES] | split off   Settings' "Split across devices" (and "Split"), applied:
//                              the model reloads split by layers across DEVICES (0,1), or on one
//   open settings|conversation-settings|export|import|rename|model-picker|welcome   and  close
//   welcome open-model|start-chatting   the welcome's buttons
//   pick PATH                  the open model picker's choice (its Choose button)
//   export-md PATH | export-json PATH | import PATH
//   screenshot PATH            the next presented frame as PNG
//   dump PATH                  what is on screen, as JSON (for tests), with what the last frame
//                              cost: messages laid out, store statements run
//   database read-only|fresh|check   the ways out the damaged-database screen offers
//   attention open INDEX       the attention panel on the INDEX-th message of the branch on screen
//   attention layer L | head H | heads mean|max | group-mean G | group-max G
//                              the map shown (the panel's selectors)
//   attention thumbnail L H    the overview grid's thumbnail of layer L, head H (a click)
//   attention scale linear|log | sink on|off | threshold X | hover ROW COL (the cell pointed at)
//   attention token N [from|to] | token none   token N of the sequence chosen (a click on it in
//                              the text): the others shaded by what it attends to (from, its row)
//                              or by what attends to it (to, its column)
//   attention zoom ROW COL SPAN | fit   the heatmap's view: SPAN tokens a side from query row ROW
//                              and key COL of the map (the wheel and a drag), or the whole map
//   attention scroll FRACTION  the panel to 0 (top) .. 1 (bottom)
//   attention export-png|export-csv|export-npy PATH | close
//   wait-attention             until the view's map is on screen (and the thumbnails, and a pooled
//                              map zoomed past its cells captured again finer)
//   bench open | close         the benchmark workbench (Ctrl+B)
//   bench set NAME VALUE       the run form: model (a path; `loaded`: the loaded model), p, n,
//                              depth, repetitions, kernels on|off, peak on|off
//   bench run | cancel         its Run and Cancel buttons
//   wait-bench                 until no benchmark is queued or running (fails if it failed)
//   bench toggle INDEX         the checkbox of the table's INDEX-th run (0-based, as shown)
//   bench clear                no run selected
//   bench filter device|model|weights TEXT   the table's filter fields (no TEXT: cleared)
//   bench sort id|measured|source|device|model|weights asc|desc
//   bench chart speed|depth|kernels|roofline|compare   the chart shown
//   bench row INDEX            the test of the last selected run the kernels and roofline show
//   bench import PATH | export PATH   (export: the selected runs, all when none is)
//   quit
#include "ui/script.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <GLFW/glfw3.h>
#include <fmt/format.h>
#include <imgui.h>
#include <imgui_internal.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "ui/actions.h"
#include "ui/bench_view.h"
#include "ui/panels.h"
#include "ui/window.h"

namespace qvk::ui {
namespace {

using json = nlohmann::json;
constexpr double kWaitLimitSeconds = 600;

std::string Unescape(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

// "ctrl+shift+enter" -> GLFW key codes, modifiers first.
std::vector<int> ParseKeys(const std::string& combo) {
  static const std::map<std::string, int> named = {
      {"ctrl", GLFW_KEY_LEFT_CONTROL}, {"shift", GLFW_KEY_LEFT_SHIFT},    {"alt", GLFW_KEY_LEFT_ALT},
      {"enter", GLFW_KEY_ENTER},       {"escape", GLFW_KEY_ESCAPE},       {"esc", GLFW_KEY_ESCAPE},
      {"tab", GLFW_KEY_TAB},           {"backspace", GLFW_KEY_BACKSPACE}, {"up", GLFW_KEY_UP},
      {"down", GLFW_KEY_DOWN},         {"left", GLFW_KEY_LEFT},           {"right", GLFW_KEY_RIGHT}};
  std::vector<int> keys;
  std::stringstream parts(combo);
  std::string part;
  while (std::getline(parts, part, '+')) {
    if (const auto it = named.find(part); it != named.end())
      keys.push_back(it->second);
    else if (part.size() == 1 && std::isalnum(static_cast<unsigned char>(part[0])))
      keys.push_back(std::toupper(static_cast<unsigned char>(part[0])));
    else
      throw Error(fmt::format("unknown key \"{}\"", part));
  }
  return keys;
}

const char* ModelStatusName(chat::ModelStatus s) {
  switch (s) {
    case chat::ModelStatus::None:
      return "none";
    case chat::ModelStatus::Loading:
      return "loading";
    case chat::ModelStatus::Ready:
      return "ready";
    case chat::ModelStatus::Failed:
      return "failed";
  }
  return "?";
}

// The dialogs `open` opens, by the names `dump` reports.
const std::map<std::string, Dialog>& DialogNames() {
  static const std::map<std::string, Dialog> names = {{"none", Dialog::None},
                                                      {"settings", Dialog::Settings},
                                                      {"conversation-settings", Dialog::ConversationSettings},
                                                      {"export", Dialog::Export},
                                                      {"import", Dialog::Import},
                                                      {"rename", Dialog::Rename},
                                                      {"model-picker", Dialog::ModelPicker},
                                                      {"welcome", Dialog::Welcome}};
  return names;
}

std::string DialogName(Dialog dialog) {
  for (const auto& [name, value] : DialogNames()) {
    if (value == dialog) return name;
  }
  return "?";
}

// Valid until the next command.
const std::vector<store::Message>& BranchOnScreen(AppState& state) {
  state.branch.Refresh(state.db(), state.conversation);
  return state.branch.thread;
}

// Whether the search worker has the hits for what the search box holds, as the store is now.
bool SearchDone(AppState& state) {
  return state.search.empty() || RequestSearch(state).Finished(state.search, state.db().revision());
}

store::Id LastAssistant(AppState& state) {
  const auto& branch = BranchOnScreen(state);
  for (auto it = branch.rbegin(); it != branch.rend(); ++it) {
    if (it->role == "assistant") return it->id;
  }
  return 0;
}

json DumpAttention(AppState& state);
json DumpBench(AppState& state);

json Dump(AppState& state) {
  json out;
  if (!state.session) {
    out["database_problem"] = {
        {"message", state.database_problem ? state.database_problem->message : ""},
        {"integrity_report", state.database_problem ? state.database_problem->integrity_report : ""}};
    return out;
  }
  out["read_only"] = state.db().read_only();
  out["model"] = {{"status", ModelStatusName(state.chat().model_status())},
                  {"name", state.chat().model_name()},
                  {"error", state.chat().model_error()},
                  {"context", state.chat().context_length()},
                  {"devices", state.chat().model_devices()}};
  out["conversation"] = state.conversation;
  out["draft"] = state.draft;
  out["banner"] = state.banner.text;
  out["banner_kind"] = state.banner.kind == Banner::Kind::Error ? "error" : "success";
  out["search"] = state.search;
  out["dialog"] = DialogName(state.dialog);
  out["generating"] = state.chat().generating();
  json conversations = json::array();
  for (const auto& c : state.db().ListConversations()) {
    conversations.push_back({{"id", c.id}, {"title", c.title}, {"pinned", c.pinned}});
  }
  out["conversations"] = conversations;
  if (!state.search.empty()) {
    const auto results = state.search_worker ? state.search_worker->ResultsFor(state.search) : nullptr;
    out["searching"] = results == nullptr;
    json hits = json::array();
    for (const auto& hit : results ? results->hits : std::vector<store::SearchHit>{}) {
      hits.push_back({{"conversation", hit.conversation_id},
                      {"message", hit.message_id},
                      {"title", hit.title},
                      {"snippet", hit.snippet}});
    }
    out["search_hits"] = hits;
  }
  if (state.unfinished_load) {
    out["unfinished_load"] = {{"path", *state.unfinished_load},
                              {"message", UnfinishedLoadMessage(*state.unfinished_load)}};
  }
  out["last_frame"] = {{"messages_laid_out", state.last_frame.messages_laid_out},
                       {"store_statements", state.last_frame.store_statements},
                       {"messages_at_bottom", state.last_frame.messages_at_bottom}};
  json branch = json::array();
  for (const auto& m : BranchOnScreen(state)) {
    branch.push_back({{"id", m.id},
                      {"role", m.role},
                      {"content", m.content},
                      {"state", store::MessageStateName(m.state)},
                      {"siblings", state.branch.SiblingPosition(m).second},
                      {"tokens", m.tokens},
                      {"notice", m.notice},
                      {"thinking_open", state.thinking_open.contains(m.id)}});
  }
  out["branch"] = branch;
  // The switch as the chat shows it (null: none) and the conversation's own choice (null: unset).
  const store::Conversation conversation = state.branch.info.value_or(store::Conversation{});
  const std::optional<bool> thinking = state.chat().Thinking(conversation);
  out["thinking"] = {{"switch", thinking ? json(*thinking) : json()},
                     {"stored", conversation.enable_thinking ? json(*conversation.enable_thinking) : json()}};
  out["context_tokens"] = state.conversation ? state.chat().ContextTokens(state.conversation) : 0;
  // What the gauge reads once its count is in (the count made here, so a test need not wait).
  out["context_gauge"] = ContextGaugeLabel(out["context_tokens"].get<uint32_t>(), state.chat().context_length());
  out["undo"] = state.undo.has_value();
  out["attention"] = DumpAttention(state);
  out["bench"] = DumpBench(state);
  return out;
}

// An action that failed says why in the banner; a script stops there.
bool Succeeded(AppState& state, bool ok) {
  if (!ok) throw Error(state.banner.text.empty() ? std::string("the action was refused") : state.banner.text);
  return true;
}

const std::set<std::string>& KnownCommands() {
  static const std::set<std::string> names = {
      "wait-model", "wait-reply",  "wait-tokens",    "frames", "type",        "key",          "send",
      "new-chat",   "select",      "search",         "rename", "pin",         "delete",       "undo",
      "regenerate", "continue",    "edit",           "branch", "stop",        "set",          "open",
      "close",      "export-md",   "export-json",    "import", "screenshot",  "dump",         "quit",
      "database",   "wait-search", "wait-branch",    "scroll", "retry-model", "choose-model", "welcome",
      "pick",       "attention",   "wait-attention", "bench",  "wait-bench",  "engine",       "thinking",
      "split"};
  return names;
}

bool SetConversationSetting(AppState& state, const std::string& argument) {
  const auto c = state.db().GetConversation(state.conversation);
  if (!c) throw Error("no conversation selected");
  const auto space = argument.find(' ');
  const std::string name = argument.substr(0, space);
  const std::string value = space == std::string::npos ? "" : Unescape(argument.substr(space + 1));
  store::ConversationSettings s = c->settings;
  if (name == "temperature")
    s.temperature = std::stof(value);
  else if (name == "top_k")
    s.top_k = static_cast<uint32_t>(std::stoul(value));
  else if (name == "top_p")
    s.top_p = std::stof(value);
  else if (name == "min_p")
    s.min_p = std::stof(value);
  else if (name == "repetition_penalty")
    s.repetition_penalty = std::stof(value);
  else if (name == "seed") {
    s.seed = std::stoull(value);
    s.random_seed = false;
  } else if (name == "max_new_tokens")
    s.max_new_tokens = static_cast<uint32_t>(std::stoul(value));
  else if (name == "system_prompt")
    s.system_prompt = value;
  else
    throw Error(fmt::format("unknown setting \"{}\"", name));
  state.db().SetConversationSettings(c->id, s);
  return true;
}

// `thinking ...`: the thinking switch, and a reply's thinking shown or folded.
bool RunThinkingCommand(AppState& state, const std::string& argument) {
  std::stringstream words(argument);
  std::string verb, index;
  words >> verb >> index;
  if (verb == "on" || verb == "off") return Succeeded(state, SetThinking(state, verb == "on"));
  if (verb != "open" && verb != "fold") throw Error("thinking on|off | open INDEX | fold INDEX");
  const auto& branch = BranchOnScreen(state);
  const size_t at = std::stoul(index);
  if (at >= branch.size()) throw Error(fmt::format("the branch on screen has {} messages", branch.size()));
  SetThinkingOpen(state, branch[at].id, verb == "open");
  return true;
}

// `engine ...`: Settings > Engines as a user fills it in, then its Apply. Open, the panel shows
// the form as filled in; closed, it reads the store again when it opens.
bool RunEngineCommand(AppState& state, const std::string& argument) {
  std::stringstream words(argument);
  std::string verb, first, second;
  words >> verb >> first >> second;
  if (!state.settings_form.loaded) LoadSettingsForm(state);
  SettingsForm& form = state.settings_form;
  if (verb == "remote") {
    if (first.empty()) throw Error("engine remote URL [KEY]");
    form.remote = true;
    form.base_url = first;
    form.api_key = second;
    Succeeded(state, RefreshRemoteModels(state));
  } else if (verb == "model") {
    if (form.remote_models.empty()) Succeeded(state, RefreshRemoteModels(state));
    if (std::find(form.remote_models.begin(), form.remote_models.end(), first) == form.remote_models.end())
      throw Error(fmt::format("\"{}\" is not among the models listed (engine remote URL lists them)", first));
    form.remote_model = first;
  } else if (verb == "local") {
    form.remote = false;
  } else {
    throw Error("engine remote URL [KEY] | model NAME | local");
  }
  Succeeded(state, ApplySettings(state));
  if (state.dialog != Dialog::Settings) form.loaded = false;
  return true;
}

// `split DEVICES [SHARES]` | `split off`: Settings' split fields as a user fills them in, then
// its Apply.
bool RunSplitCommand(AppState& state, const std::string& argument) {
  std::stringstream words(argument);
  std::string devices, shares;
  words >> devices >> shares;
  if (devices.empty()) throw Error("split DEVICES [SHARES] | split off");
  if (!state.settings_form.loaded) LoadSettingsForm(state);
  SettingsForm& form = state.settings_form;
  form.split_devices = devices == "off" ? "" : devices;
  form.split = devices == "off" ? "" : shares;
  Succeeded(state, ApplySettings(state));
  if (state.dialog != Dialog::Settings) form.loaded = false;
  return true;
}

// `attention ...`: the attention panel's buttons and selectors.
bool RunAttentionCommand(AppState& state, const std::string& argument) {
  std::stringstream words(argument);
  std::string verb, first, second;
  words >> verb >> first >> second;
  AttentionView view = state.attention.view;
  const auto number = [](const std::string& text) { return static_cast<uint32_t>(std::stoul(text)); };
  if (verb == "open") {
    const auto& branch = BranchOnScreen(state);
    const size_t index = std::stoul(first);
    if (index >= branch.size()) throw Error(fmt::format("the branch on screen has {} messages", branch.size()));
    return Succeeded(state, OpenAttention(state, branch[index].id));
  }
  if (verb == "close") {
    CloseAttention(state);
    return true;
  }
  if (state.attention.message == 0) throw Error("the attention panel is not open");
  if (verb == "layer") {
    view.layer = number(first);
  } else if (verb == "head" || verb == "thumbnail") {
    if (verb == "thumbnail") view.layer = number(first);
    view.heads = AttentionHeads::One;
    view.index = number(verb == "head" ? first : second);
  } else if (verb == "heads" && (first == "mean" || first == "max")) {
    view.heads = first == "mean" ? AttentionHeads::Mean : AttentionHeads::Max;
  } else if (verb == "group-mean" || verb == "group-max") {
    view.heads = verb == "group-mean" ? AttentionHeads::GroupMean : AttentionHeads::GroupMax;
    view.index = number(first);
  } else if (verb == "scale" && (first == "linear" || first == "log")) {
    state.attention.log_scale = first == "log";
    return true;
  } else if (verb == "sink" && (first == "on" || first == "off")) {
    SetAttentionSinkMuted(state, first == "on");
    return true;
  } else if (verb == "threshold") {
    SetAttentionThreshold(state, std::stof(first));
    return true;
  } else if (verb == "token") {
    const TokenDirection direction = second == "to" ? TokenDirection::AttendedBy : TokenDirection::AttendsTo;
    if (!second.empty() && second != "to" && second != "from") throw Error("attention token N [from|to]");
    const std::optional<uint32_t> token = first == "none" ? std::nullopt : std::optional(number(first));
    return Succeeded(state, SelectAttentionToken(state, token, direction));
  } else if (verb == "zoom") {
    float row = 0, col = 0, span = 0;
    std::stringstream numbers(argument.substr(verb.size()));
    if (!(numbers >> row >> col >> span)) throw Error("attention zoom ROW COL SPAN");
    ZoomAttention(state, {row, col, span});
    return true;
  } else if (verb == "fit") {
    ZoomAttention(state, {});
    return true;
  } else if (verb == "scroll") {
    state.attention.scroll_to = std::stof(first);
    return true;
  } else if (verb == "hover") {
    state.attention.hover = std::pair(number(first), number(second));
    state.attention.hover_from_mouse = false;
    return true;
  } else if (verb == "export-png" || verb == "export-csv" || verb == "export-npy") {
    const std::string path = argument.substr(argument.find(' ') + 1);
    const AttentionFormat format = verb == "export-png"   ? AttentionFormat::Png
                                   : verb == "export-csv" ? AttentionFormat::Csv
                                                          : AttentionFormat::Npy;
    return Succeeded(state, ExportAttention(state, path, format));
  } else {
    throw Error(fmt::format("unknown attention command \"{}\"", argument));
  }
  return Succeeded(state, ShowAttentionView(state, view));
}

json DumpAttention(AppState& state) {
  const AttentionPanel& panel = state.attention;
  static const char* const heads[] = {"one", "mean", "max", "group-mean", "group-max"};
  json out = {{"message", panel.message},
              {"layer", panel.view.layer},
              {"heads", heads[static_cast<int>(panel.view.heads)]},
              {"index", panel.view.index},
              {"capturing", panel.capturing},
              {"log_scale", panel.log_scale},
              {"mute_sink", panel.view.mute_sink},
              {"threshold", panel.threshold},
              {"thumbnails", panel.thumbnails.size()},
              {"capture_gpu_bytes", panel.capture_gpu_bytes}};
  const chat::MessageAttention* tokens = AttentionTokensOnScreen(panel);
  if (tokens) {
    out["tokens"] = tokens->ids.size();
    out["message_begin"] = tokens->message_begin;
    json labels = json::array();
    for (const std::string& piece : tokens->pieces) labels.push_back(AttentionTokenLabel(piece));
    out["labels"] = labels;
  }
  if (panel.live) {
    out["live"] = {{"reply", panel.live->reply},
                   {"ended", panel.live->ended},
                   {"first_row", panel.live->first_position},
                   {"rows", panel.live->rows.size()}};
  }
  if (panel.token) {
    out["token"] = {{"index", *panel.token},
                    {"direction", panel.direction == TokenDirection::AttendsTo ? "from" : "to"},
                    {"shading", AttentionTokenShading(panel)}};
  }
  if (!panel.shown) return out;
  const AttentionMap& map = *panel.shown;
  out["shown"] = {{"layer", map.request.layer},
                  {"first_head", map.request.first_head},
                  {"plane_heads", map.request.plane_heads},
                  {"first_row", map.request.first_row},
                  {"rows", map.rows},
                  {"cols", map.cols},
                  {"cell", map.request.cell}};
  const HeatmapZoom zoom = ClampedZoom(panel);
  out["zoom"] = {{"row", zoom.row}, {"col", zoom.col}, {"span", zoom.span}};
  if (const AttentionMap* detail = AttentionDetailInView(state)) {
    out["detail"] = {
        {"first_row", detail->request.first_row}, {"end_row", detail->request.end_row}, {"cell", detail->request.cell}};
  }
  if (panel.texture) {
    out["texture"] = {
        {"width", panel.texture->width()}, {"height", panel.texture->height()}, {"uploads", panel.texture->uploads()}};
  }
  if (panel.hover && panel.hover->first < map.rows && panel.hover->second < map.cols) {
    const auto [row, col] = *panel.hover;
    out["hover"] = {{"row", row},
                    {"col", col},
                    {"masked", map.masked(row, col)},
                    {"value", map.values[size_t{row} * map.cols + col]}};
    if (map.request.cell == 1 && tokens) {
      out["hover"]["query"] = AttentionTokenLabel(tokens->pieces[map.request.first_row + row]);
      out["hover"]["key"] = AttentionTokenLabel(tokens->pieces[col]);
    }
  }
  return out;
}

// `bench ...`: the benchmark workbench's form, buttons, table and chart selector.
bool RunBenchCommand(AppState& state, const std::string& argument) {
  std::stringstream words(argument);
  std::string verb, first;
  words >> verb >> first;
  std::string rest;
  std::getline(words, rest);
  if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
  const std::string after_verb = argument.size() > verb.size() ? argument.substr(verb.size() + 1) : "";
  BenchPanel& panel = state.bench;
  BenchForm& form = panel.form;
  if (verb == "open" || verb == "close") {
    OpenBenchmark(state, verb == "open");
    return true;
  }
  if (!panel.open) throw Error("the benchmark workbench is not open");
  static const std::map<std::string, BenchChart> charts = {{"speed", BenchChart::Speed},
                                                           {"depth", BenchChart::Depth},
                                                           {"kernels", BenchChart::Kernels},
                                                           {"roofline", BenchChart::Roofline},
                                                           {"compare", BenchChart::Compare}};
  static const std::map<std::string, BenchColumn> columns = {
      {"id", BenchColumn::Id},         {"measured", BenchColumn::Measured}, {"source", BenchColumn::Source},
      {"device", BenchColumn::Device}, {"model", BenchColumn::Model},       {"weights", BenchColumn::Weights}};
  if (verb == "set") {
    const auto on = [&] {
      if (rest != "on" && rest != "off") throw Error(fmt::format("bench set {} on|off", first));
      return rest == "on";
    };
    if (first == "model") {
      form.model_path = rest == "loaded" ? "" : rest;
    } else if (first == "p" || first == "n" || first == "depth" || first == "repetitions") {
      int& field = first == "p"       ? form.prompt
                   : first == "n"     ? form.generate
                   : first == "depth" ? form.depth
                                      : form.repetitions;
      field = std::stoi(rest);
    } else if (first == "kernels") {
      form.kernels = on();
    } else if (first == "peak") {
      form.device_peak = on();
    } else {
      throw Error(fmt::format("unknown benchmark setting \"{}\"", first));
    }
    return true;
  }
  if (verb == "run") return Succeeded(state, StartBenchmark(state));
  if (verb == "cancel") {
    CancelBenchmark(state);
    return true;
  }
  if (verb == "toggle") {
    const auto shown = ShownBenchRuns(panel);
    const size_t index = std::stoul(first);
    if (index >= shown.size()) throw Error(fmt::format("the table shows {} runs", shown.size()));
    ToggleBenchRun(state, shown[index]->id);
    return true;
  }
  if (verb == "clear") {
    ClearBenchSelection(state);
    return true;
  }
  if (verb == "filter") {
    std::string& field = first == "device"    ? panel.device_filter
                         : first == "model"   ? panel.model_filter
                         : first == "weights" ? panel.weights_filter
                                              : throw Error("bench filter device|model|weights TEXT");
    field = rest;
    return true;
  }
  if (verb == "sort") {
    const auto it = columns.find(first);
    if (it == columns.end() || (rest != "asc" && rest != "desc")) throw Error("bench sort COLUMN asc|desc");
    panel.sort = it->second;
    panel.ascending = rest == "asc";
    return true;
  }
  if (verb == "chart") {
    const auto it = charts.find(first);
    if (it == charts.end()) throw Error("bench chart speed|depth|kernels|roofline|compare");
    panel.chart = it->second;
    return true;
  }
  if (verb == "row") {
    if (!panel.detail || std::stoul(first) >= panel.detail->rows.size())
      throw Error("the selected run has no such test");
    panel.detail_row = std::stoul(first);
    return true;
  }
  if (verb == "import") return Succeeded(state, ImportBenchRuns(state, after_verb));
  if (verb == "export") return Succeeded(state, ExportBenchRuns(state, after_verb));
  throw Error(fmt::format("unknown bench command \"{}\"", argument));
}

json BenchRowJson(const store::BenchRow& row) {
  return {{"test", row.Name()}, {"tokens_per_s", row.mean_tokens_per_s}, {"stddev", row.stddev_tokens_per_s}};
}

json DumpBench(AppState& state) {
  BenchPanel& panel = state.bench;
  const chat::BenchProgress progress = state.chat().bench_progress();
  static const char* const charts[] = {"speed", "depth", "kernels", "roofline", "compare"};
  json out = {{"open", panel.open},        {"running", progress.running},
              {"done", progress.done},     {"total", progress.total},
              {"step", progress.step},     {"error", progress.error},
              {"saved", progress.saved},   {"chart", charts[static_cast<int>(panel.chart)]},
              {"selected", panel.selected}};
  if (!panel.open) return out;
  RefreshBenchRuns(state);
  json table = json::array();
  for (const store::BenchRun* run : ShownBenchRuns(panel)) {
    json rows = json::array();
    for (const store::BenchRow& row : run->rows) rows.push_back(BenchRowJson(row));
    table.push_back({{"id", run->id},
                     {"label", BenchRunLabel(*run)},
                     {"source", store::BenchSourceName(run->source)},
                     {"device", run->device.name},
                     {"model", run->model.name},
                     {"weights", run->model.weight_types},
                     {"rows", rows}});
  }
  out["table"] = table;
  const BenchComparison comparison = CompareBenchRuns(SelectedBenchRuns(panel));
  json lines = json::array();
  for (const BenchComparison::Line& line : comparison.lines) {
    json rates = json::array(), ratios = json::array();
    for (size_t r = 0; r < line.rows.size(); ++r) {
      rates.push_back(line.rows[r] ? json(line.rows[r]->mean_tokens_per_s) : json(nullptr));
      ratios.push_back(line.ratio[r] ? json(*line.ratio[r]) : json(nullptr));
    }
    lines.push_back({{"test", line.test}, {"tokens_per_s", rates}, {"ratio", ratios}});
  }
  out["compare"] = lines;
  if (panel.detail && panel.detail_row < panel.detail->rows.size()) {
    const store::BenchRow& row = panel.detail->rows[panel.detail_row];
    json kernels = json::array(), roofline = json::array();
    for (const store::BenchKernel& k : row.kernels) kernels.push_back({{"label", k.label}, {"share", k.share}});
    for (const store::RooflinePoint& p : store::Roofline(row, panel.detail->device)) {
      roofline.push_back({{"label", p.label},
                          {"intensity", p.intensity},
                          {"gflops", p.teraflops * 1e3},
                          {"of_roof", p.of_roof},
                          {"limiter", store::LimiterName(p.limiter)}});
    }
    out["detail"] = {{"run", panel.detail->id},
                     {"test", row.Name()},
                     {"has_peaks", panel.detail->device.peaks.has_value()},
                     {"kernels", kernels},
                     {"roofline", roofline}};
  }
  return out;
}

}  // namespace

ScriptRunner::ScriptRunner(const std::filesystem::path& path) : wait_started_(std::chrono::steady_clock::now()) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("cannot read the script {}", path.string()));
  std::string text;
  int line = 0;
  while (std::getline(in, text)) {
    ++line;
    while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.pop_back();
    if (text.empty() || text[0] == '#') continue;
    const auto space = text.find(' ');
    if (!KnownCommands().contains(text.substr(0, space))) {
      throw Error(fmt::format("{} line {}: unknown command \"{}\"", path.string(), line, text.substr(0, space)));
    }
    commands_.push_back({line, text.substr(0, space), space == std::string::npos ? "" : text.substr(space + 1)});
  }
}

void ScriptRunner::Fail(const Command& command, const std::string& why) {
  error_ = fmt::format("script line {} ({}): {}", command.line, command.name, why);
}

void ScriptRunner::Step(AppState& state) {
  waiting_ = false;

  while (next_ < commands_.size() && error_.empty()) {
    const Command& command = commands_[next_];
    bool done = false;
    try {
      done = Run(state, command);
    } catch (const std::exception& e) {
      Fail(command, e.what());
    }
    if (!error_.empty()) break;
    if (!done) {
      if (std::chrono::steady_clock::now() - wait_started_ > std::chrono::duration<double>(kWaitLimitSeconds)) {
        Fail(command, "timed out");
        break;
      }
      return;
    }
    spdlog::debug("script line {}: {} done", command.line, command.name);
    ++next_;
    frames_left_ = -1;
    wait_started_ = std::chrono::steady_clock::now();
    // Keys and typing act in the frame that follows; a screenshot is of that frame.
    if (command.name == "key" || command.name == "type" || command.name == "screenshot" || command.name == "open" ||
        command.name == "frames" || command.name == "scroll" || command.name == "welcome" || command.name == "pick") {
      return;
    }
    // A database opened: the frame loop starts the chat session before the next command.
    if (command.name == "database") return;
  }
  if (!error_.empty()) spdlog::error("{}", error_);
  state.quit = true;
}

bool ScriptRunner::Run(AppState& state, const Command& c) {
  const std::string& arg = c.argument;
  const std::string& name = c.name;
  static const std::set<std::string> without_store = {"frames", "screenshot", "dump", "quit", "database"};
  if (!state.session && !without_store.contains(name)) {
    throw Error("the conversation database is not open (the app shows why)");
  }
  if (name == "database") {
    if (!state.database_problem) throw Error("the database has no problem to resolve");
    if (arg == "read-only") return Succeeded(state, OpenDatabase(state, true));
    if (arg == "fresh") return Succeeded(state, MoveDatabaseAsideAndStartFresh(state));
    if (arg == "check") {
      CheckDatabaseIntegrity(state);
      return true;
    }
    throw Error("database read-only|fresh|check");
  }
  if (name == "quit") {
    next_ = commands_.size();
    return true;
  }
  if (name == "frames") {
    if (frames_left_ < 0) frames_left_ = std::stoi(arg);
    return frames_left_-- <= 0;
  }
  if (name == "wait-model") {
    waiting_ = true;
    const chat::ModelStatus s = state.chat().model_status();
    if (s == chat::ModelStatus::None) throw Error("no model is configured");
    if (s == chat::ModelStatus::Loading) return false;
    // `wait-model failed`: a test of what the user sees when a model cannot be loaded.
    const bool expect_failure = arg == "failed";
    if (s == chat::ModelStatus::Failed && !expect_failure) {
      throw Error("the model failed to load: " + state.chat().model_error());
    }
    if (s == chat::ModelStatus::Ready && expect_failure) throw Error("the model loaded");
    return true;
  }
  if (name == "wait-reply") {
    waiting_ = true;
    return !state.chat().generating();
  }
  if (name == "wait-tokens") {
    waiting_ = true;
    const chat::LiveReply live = state.chat().live();
    return !state.chat().generating() || live.tokens >= static_cast<uint32_t>(std::stoul(arg));
  }
  if (name == "type") {
    const std::string text = Unescape(arg);
    // One code point at a time, where GLFW's char callback puts them.
    const char* const end = text.data() + text.size();
    for (const char* at = text.data(); at < end;) {
      unsigned int code = 0;
      at += std::max(1, ImTextCharFromUtf8(&code, at, end));
      state.window.QueueChar(code);
    }
    return true;
  }
  if (name == "key") {
    // Faster than any frame, as a quick tap can be: the window must still see each key go down.
    const std::vector<int> keys = ParseKeys(arg);
    for (const int key : keys) state.window.QueueKey(key, 0, GLFW_PRESS, 0);
    for (auto key = keys.rbegin(); key != keys.rend(); ++key) state.window.QueueKey(*key, 0, GLFW_RELEASE, 0);
    return true;
  }
  if (name == "send") {
    state.draft = Unescape(arg);
    return Succeeded(state, SendDraft(state));
  }
  if (name == "new-chat") return NewConversation(state) != 0;
  if (name == "select") {
    for (const auto& conversation : state.db().ListConversations()) {
      if (conversation.title == arg) {
        SelectConversation(state, conversation.id);
        return true;
      }
    }
    throw Error(fmt::format("no conversation titled \"{}\"", arg));
  }
  if (name == "search") {
    state.search = arg;
    waiting_ = true;
    return SearchDone(state);
  }
  if (name == "wait-search") {
    waiting_ = true;
    return SearchDone(state);
  }
  if (name == "wait-branch") {
    waiting_ = true;
    return state.branch.conversation == state.conversation && state.branch.revision == state.db().revision();
  }
  if (name == "scroll") {
    state.scroll_messages_to = std::clamp(std::stof(arg), 0.0f, 1.0f);
    return true;
  }
  if (name == "retry-model") return Succeeded(state, RetryUnfinishedLoad(state));
  if (name == "choose-model") {
    ChooseAnotherModel(state);
    return true;
  }
  if (name == "rename") return Succeeded(state, RenameConversation(state, state.conversation, Unescape(arg)));
  if (name == "pin") return Succeeded(state, TogglePinned(state, state.conversation));
  if (name == "delete") return Succeeded(state, DeleteConversation(state, state.conversation));
  if (name == "undo") return Succeeded(state, UndoDelete(state));
  if (name == "regenerate" || name == "continue") {
    const store::Id message = LastAssistant(state);
    if (message == 0) throw Error("no assistant message on screen");
    return Succeeded(state, name == "regenerate" ? Regenerate(state, message) : ContinueReply(state, message));
  }
  if (name == "edit" || name == "branch") {
    const auto space = arg.find(' ');
    const size_t index = std::stoul(arg.substr(0, space));
    const std::string rest = space == std::string::npos ? "" : arg.substr(space + 1);
    const auto& branch = BranchOnScreen(state);
    if (index >= branch.size()) throw Error(fmt::format("the branch on screen has {} messages", branch.size()));
    if (name == "branch") {
      if (rest != "prev" && rest != "next") throw Error("branch INDEX prev|next");
      return SwitchBranch(state, branch[index].id, rest == "prev" ? -1 : +1);
    }
    state.editing = branch[index].id;
    state.edit_text = Unescape(rest);
    return Succeeded(state, SubmitEdit(state));
  }
  if (name == "stop") {
    StopGeneration(state);
    return true;
  }
  if (name == "set") return SetConversationSetting(state, arg);
  if (name == "thinking") return RunThinkingCommand(state, arg);
  if (name == "open") {
    const auto it = DialogNames().find(arg);
    if (it == DialogNames().end() || it->second == Dialog::None) throw Error(fmt::format("unknown dialog \"{}\"", arg));
    if (it->second == Dialog::ModelPicker) {
      OpenModelPicker(state, Dialog::Settings);  // as Settings' Browse does
      return true;
    }
    if (it->second == Dialog::Export) state.dialog_text = DefaultExportPath(state, state.export_json).string();
    state.dialog = it->second;
    return true;
  }
  if (name == "welcome") {
    if (state.dialog != Dialog::Welcome) throw Error("the welcome is not open");
    if (arg == "open-model") {
      OpenModelPicker(state, Dialog::Welcome);
    } else if (arg == "start-chatting") {
      StartChatting(state);
    } else {
      throw Error("welcome open-model|start-chatting");
    }
    return true;
  }
  if (name == "pick") {
    if (state.dialog != Dialog::ModelPicker || !state.model_picker.is_open())
      throw Error("the model picker is not open");
    state.model_picker.Choose(arg);
    return true;
  }
  if (name == "close") {
    state.dialog = Dialog::None;
    state.conversation_form.reset();
    return true;
  }
  if (name == "export-md" || name == "export-json") {
    return Succeeded(state, ExportConversation(state, arg, name == "export-json"));
  }
  if (name == "import") return Succeeded(state, ImportConversation(state, arg));
  if (name == "attention") return RunAttentionCommand(state, arg);
  if (name == "bench") return RunBenchCommand(state, arg);
  if (name == "engine") return RunEngineCommand(state, arg);
  if (name == "split") return RunSplitCommand(state, arg);
  if (name == "wait-bench") {
    waiting_ = true;
    const chat::BenchProgress progress = state.chat().bench_progress();
    if (progress.running) return false;
    if (!progress.error.empty()) throw Error("the benchmark failed: " + progress.error);
    return true;
  }
  if (name == "wait-attention") {
    waiting_ = true;
    TrackAttention(state);
    const AttentionPanel& panel = state.attention;
    if (panel.message == 0)
      throw Error(state.banner.text.empty() ? "the attention panel is closed" : state.banner.text);
    return panel.map && !panel.capturing && panel.captured_view == panel.view && !panel.thumbnails.empty() &&
           AttentionDetailReady(state);
  }
  if (name == "screenshot") {
    state.window.RequestScreenshot(arg);
    return true;
  }
  if (name == "dump") {
    std::ofstream out(arg);
    out << Dump(state).dump(2) << "\n";
    if (!out) throw Error(fmt::format("cannot write {}", arg));
    return true;
  }
  throw Error(fmt::format("command \"{}\" is listed but not run", name));
}

}  // namespace qvk::ui
