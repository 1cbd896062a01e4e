// The desktop app as a user meets it: the real `qwenvk` binary in a window (under Xvfb in CI, on
// whatever Vulkan device exists), driven by --script through a conversation with the fixture
// model; assertions on what the app says is on screen (its `dump`), on the database, on exported
// files and on screenshots. Also: SIGKILL mid-reply and restart, a remote server killed mid-reply,
// a damaged and a locked database.
//
// The CTest entries run this binary under xvfb-run (see tests/CMakeLists.txt); every app run
// has the validation layer on, and a validation message makes qwenvk exit 3.
//
// Sections: running the app / chat, branches, search, export and import / keyboard /
// sidebar / big conversations / a model that does not load / attention / thinking / the benchmark workbench /
// the bundled model and the welcome /
// quitting and SIGKILL mid-reply / a remote engine / damaged database / locked database
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>
#include <stb_image.h>
#include <nlohmann/json.hpp>

#include "serve_process.h"
#include "store/store.h"
#include "test_util.h"

extern char** environ;

namespace {

using json = nlohmann::json;
using qvk::test::ExpectMentions;
using qvk::test::ReadFile;
using qvk::test::ServeProcess;
using qvk::test::TempDir;
namespace fs = std::filesystem;

const fs::path kModel = qvk::test::TestDataDir() / "qwen2-tiny";

class AppProcess {
 public:
  // `model`: --model, none to leave it out. The fixture stands in for the bundled demo model
  // unless `bundled` names another place (QWENVK_BUNDLED_MODEL).
  AppProcess(const TempDir& dir, const std::string& script, const std::string& name = "run",
             const std::optional<fs::path>& model = kModel, const fs::path& bundled = kModel) {
    const fs::path script_file = dir.Write(name + ".script", script);
    log_ = dir.path() / (name + ".log");
    std::vector<std::string> args = {qvk::test::QwenvkBinary().string(), "--db", (dir.path() / "chats.db").string(),
                                     "--script", script_file.string()};
    if (model) args.insert(args.end(), {"--model", model->string()});
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    setenv("QWENVK_VALIDATION", "1", 1);
    setenv("QWENVK_BUNDLED_MODEL", bundled.c_str(), 1);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start qwenvk");
  }
  // Exit status; -signal when killed.
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }
  void Kill() { kill(pid_, SIGKILL); }
  std::string log() const { return ReadFile(log_); }

 private:
  pid_t pid_ = 0;
  fs::path log_;
};

// Runs a script to its end; the app must exit 0 (no script failure, no validation message).
void RunScript(const TempDir& dir, const std::string& script, const std::string& name = "run",
               const std::optional<fs::path>& model = kModel, const fs::path& bundled = kModel) {
  AppProcess app(dir, script, name, model, bundled);
  const int status = app.Wait();
  ASSERT_EQ(status, 0) << app.log();
}

json ReadJson(const fs::path& path) {
  return json::parse(ReadFile(path));
}

// A screenshot that shows a UI: the window's size, and not one flat color.
void ExpectScreenshot(const fs::path& png) {
  int width = 0, height = 0, channels = 0;
  unsigned char* pixels = stbi_load(png.c_str(), &width, &height, &channels, 4);
  ASSERT_NE(pixels, nullptr) << png;
  EXPECT_GE(width, 640);
  EXPECT_GE(height, 400);
  size_t differing = 0;
  for (int i = 1; i < width * height; ++i) differing += std::memcmp(pixels, pixels + 4 * i, 3) != 0;
  stbi_image_free(pixels);
  EXPECT_GT(differing, static_cast<size_t>(width * height / 100)) << "the screenshot is nearly one color";
}

std::string P(const TempDir& dir, const std::string& name) {
  return (dir.path() / name).string();
}

// The text of the database's `index`-th assistant message (0-based) once a flush of the app
// writing it has put 20 characters there; what is there after four minutes otherwise. Read
// through SQLite directly, as the app holds the database open.
std::string WaitForPartialReply(const fs::path& db, size_t index) {
  std::string partial;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  while (partial.size() < 20 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    sqlite3* raw = nullptr;
    if (sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* statement = nullptr;
      if (sqlite3_prepare_v2(raw, "SELECT content FROM messages WHERE role = 'assistant' ORDER BY id LIMIT 1 OFFSET ?",
                             -1, &statement, nullptr) == SQLITE_OK &&
          sqlite3_bind_int64(statement, 1, static_cast<sqlite3_int64>(index)) == SQLITE_OK &&
          sqlite3_step(statement) == SQLITE_ROW) {
        partial = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
      }
      sqlite3_finalize(statement);
    }
    sqlite3_close(raw);
  }
  return partial;
}

TEST(DesktopTest, ChatBranchSearchExportImport) {
  TempDir dir;
  RunScript(dir,
            "wait-model\n"
            "new-chat\n"
            "set temperature 0\n"
            "set max_new_tokens 12\n"
            "type Hello from the desktop test\n"
            "key enter\n"
            "wait-reply\n"
            "frames 2\n"
            "screenshot " +
                P(dir, "chat.png") +
                "\n"
                "dump " +
                P(dir, "sent.json") +
                "\n"
                "edit 0 A different question\n"
                "wait-reply\n"
                "dump " +
                P(dir, "edited.json") +
                "\n"
                "branch 0 prev\n"
                "dump " +
                P(dir, "back.json") +
                "\n"
                "regenerate\n"
                "wait-reply\n"
                "dump " +
                P(dir, "regenerated.json") +
                "\n"
                "search desktop\n"
                "frames 2\n"
                "screenshot " +
                P(dir, "search.png") +
                "\n"
                "dump " +
                P(dir, "search.json") +
                "\n"
                "export-md " +
                P(dir, "chat.md") +
                "\n"
                "export-json " +
                P(dir, "chat.json") +
                "\n"
                "import " +
                P(dir, "chat.json") +
                "\n"
                "dump " +
                P(dir, "imported.json") +
                "\n"
                "quit\n");

  const json sent = ReadJson(dir.path() / "sent.json");
  EXPECT_EQ(sent["model"]["status"], "ready");
  EXPECT_EQ(sent["draft"], "");
  ASSERT_EQ(sent["branch"].size(), 2u) << sent.dump(2);
  EXPECT_EQ(sent["branch"][0]["role"], "user");
  EXPECT_EQ(sent["branch"][0]["content"], "Hello from the desktop test");
  EXPECT_EQ(sent["branch"][1]["role"], "assistant");
  EXPECT_EQ(sent["branch"][1]["state"], "complete");
  EXPECT_GE(sent["branch"][1]["tokens"].get<int>(), 1);
  EXPECT_LE(sent["branch"][1]["tokens"].get<int>(), 12);
  EXPECT_EQ(sent["conversations"][0]["title"], "Hello from the desktop test");
  EXPECT_GT(sent["context_tokens"].get<int>(), 10);
  ExpectScreenshot(dir.path() / "chat.png");

  const json edited = ReadJson(dir.path() / "edited.json");
  ASSERT_EQ(edited["branch"].size(), 2u);
  EXPECT_EQ(edited["branch"][0]["content"], "A different question");
  EXPECT_EQ(edited["branch"][0]["siblings"], 2);
  EXPECT_EQ(edited["branch"][1]["state"], "complete");

  const json back = ReadJson(dir.path() / "back.json");
  ASSERT_EQ(back["branch"].size(), 2u);
  EXPECT_EQ(back["branch"][0]["content"], "Hello from the desktop test");
  EXPECT_EQ(back["branch"][1]["content"], sent["branch"][1]["content"]);

  const json regenerated = ReadJson(dir.path() / "regenerated.json");
  EXPECT_EQ(regenerated["branch"][1]["siblings"], 2);
  // Greedy (temperature 0): the regenerated reply is the same text.
  EXPECT_EQ(regenerated["branch"][1]["content"], sent["branch"][1]["content"]);

  const json search = ReadJson(dir.path() / "search.json");
  // Its title and its first message both match: the conversation is listed once.
  ASSERT_EQ(search["search_hits"].size(), 1u) << search.dump(2);
  EXPECT_EQ(search["search_hits"][0]["conversation"], sent["conversation"]);
  ExpectScreenshot(dir.path() / "search.png");

  const std::string markdown = ReadFile(dir.path() / "chat.md");
  EXPECT_NE(markdown.find("Hello from the desktop test"), std::string::npos) << markdown;
  const json exported = ReadJson(dir.path() / "chat.json");
  EXPECT_EQ(exported["messages"].size(), 5u);  // two questions, three replies

  const json imported = ReadJson(dir.path() / "imported.json");
  EXPECT_EQ(imported["conversations"].size(), 2u);
  EXPECT_EQ(imported["banner"], "Imported chat.json");
  EXPECT_EQ(imported["banner_kind"], "success");
  EXPECT_NE(imported["conversation"], sent["conversation"]);

  // The database holds what the screen showed, every reply finished.
  qvk::store::Store store(dir.path() / "chats.db");
  const auto messages = store.AllMessages(sent["conversation"].get<int64_t>());
  ASSERT_EQ(messages.size(), 5u);
  for (const auto& m : messages) EXPECT_EQ(m.state, qvk::store::MessageState::Complete) << m.content;
}

TEST(DesktopTest, KeyboardSendsStopsAndSearches) {
  TempDir dir;
  RunScript(dir,
            "wait-model\n"
            "key ctrl+n\n"
            "set temperature 0\n"
            "set max_new_tokens 100000\n"
            "type line one\n"
            "key shift+enter\n"
            "type line two\n"
            "dump " +
                P(dir, "draft.json") +
                "\n"
                "key enter\n"
                "wait-tokens 3\n"
                "type keep me\n"
                "key escape\n"
                "wait-reply\n"
                "key escape\n"
                "frames 2\n"
                "dump " +
                P(dir, "stopped.json") +
                "\n"
                "key ctrl+n\n"
                "key ctrl+f\n"
                "frames 2\n"
                "type line\n"
                "frames 2\n"
                "wait-search\n"
                "dump " +
                P(dir, "search.json") +
                "\n"
                "quit\n");
  const json draft = ReadJson(dir.path() / "draft.json");
  EXPECT_EQ(draft["draft"], "line one\nline two");
  EXPECT_EQ(draft["conversations"].size(), 1u);

  const json stopped = ReadJson(dir.path() / "stopped.json");
  ASSERT_EQ(stopped["branch"].size(), 2u) << stopped.dump(2);
  EXPECT_EQ(stopped["branch"][0]["content"], "line one\nline two");
  EXPECT_EQ(stopped["branch"][1]["state"], "complete");
  EXPECT_GE(stopped["branch"][1]["tokens"].get<int>(), 3);
  EXPECT_LT(stopped["branch"][1]["tokens"].get<int>(), 100000);
  EXPECT_FALSE(stopped["generating"].get<bool>());
  EXPECT_EQ(stopped["draft"], "keep me");  // Esc stops the reply; it never erases what is typed

  const json search = ReadJson(dir.path() / "search.json");
  EXPECT_EQ(search["search"], "line");
  EXPECT_EQ(search["conversations"].size(), 2u);  // Ctrl+N made a second, empty one
  ASSERT_FALSE(search["search_hits"].empty());
}

// Taps shorter than a frame: every key of a `key` line goes down and up before the next frame,
// as a quick hand does between two event-driven frames.
TEST(DesktopTest, KeyTapsWithinOneFrameAct) {
  TempDir dir;
  RunScript(dir,
            "wait-model\n"
            "new-chat\n"
            "set temperature 0\n"
            "set max_new_tokens 100000\n"
            "type a first draft\n"
            "key ctrl+a\n"
            "type Tell me a story\n"
            "frames 2\n"
            "dump " +
                P(dir, "replaced.json") +
                "\n"
                "key enter\n"
                "wait-tokens 3\n"
                "key escape\n"
                "wait-reply\n"
                "frames 2\n"
                "dump " +
                P(dir, "stopped.json") +
                "\n"
                "quit\n");
  const json replaced = ReadJson(dir.path() / "replaced.json");
  EXPECT_EQ(replaced["draft"], "Tell me a story");  // Ctrl+A selected the draft, typing replaced it
  const json stopped = ReadJson(dir.path() / "stopped.json");
  ASSERT_EQ(stopped["branch"].size(), 2u) << stopped.dump(2);
  EXPECT_EQ(stopped["branch"][0]["content"], "Tell me a story");
  EXPECT_FALSE(stopped["generating"].get<bool>());
  // Stopped by Esc, not by the context filling up (which says so in a notice).
  EXPECT_EQ(stopped["branch"][1]["notice"], "") << stopped.dump(2);
  EXPECT_LT(stopped["context_tokens"].get<int>(), stopped["model"]["context"].get<int>() / 2);
}

TEST(DesktopTest, SidebarRenamesPinsDeletesAndUndoes) {
  TempDir dir;
  RunScript(dir,
            "wait-model\n"
            "new-chat\n"
            "rename First\n"
            "new-chat\n"
            "rename Second\n"
            "dump " +
                P(dir, "two.json") +
                "\n"
                "select First\n"
                "pin\n"
                "dump " +
                P(dir, "pinned.json") +
                "\n"
                "select Second\n"
                "delete\n"
                "frames 2\n"
                "screenshot " +
                P(dir, "deleted.png") +
                "\n"
                "dump " +
                P(dir, "deleted.json") +
                "\n"
                "undo\n"
                "dump " +
                P(dir, "restored.json") +
                "\n"
                "delete\n"
                "quit\n",
            "first");
  const json two = ReadJson(dir.path() / "two.json");
  ASSERT_EQ(two["conversations"].size(), 2u);
  EXPECT_EQ(two["conversations"][0]["title"], "Second");  // newest first
  const json pinned = ReadJson(dir.path() / "pinned.json");
  EXPECT_EQ(pinned["conversations"][0]["title"], "First");  // pinned before newer ones
  EXPECT_TRUE(pinned["conversations"][0]["pinned"].get<bool>());
  const json deleted = ReadJson(dir.path() / "deleted.json");
  ASSERT_EQ(deleted["conversations"].size(), 1u);
  EXPECT_TRUE(deleted["undo"].get<bool>());
  EXPECT_EQ(deleted["conversation"], 0);
  ExpectScreenshot(dir.path() / "deleted.png");
  const json restored = ReadJson(dir.path() / "restored.json");
  EXPECT_EQ(restored["conversations"].size(), 2u);
  EXPECT_EQ(restored["conversation"], two["conversations"][0]["id"]);

  // A delete lasts once the app has quit: the next start purges it. It was open last, so the
  // next start opens none.
  RunScript(dir, "dump " + P(dir, "next-start.json") + "\nselect First\nquit\n", "second");
  const json next_start = ReadJson(dir.path() / "next-start.json");
  ASSERT_EQ(next_start["conversations"].size(), 1u);
  EXPECT_EQ(next_start["conversations"][0]["title"], "First");
  EXPECT_EQ(next_start["conversation"], 0);
  // The conversation open when the app quit is open again at the next start.
  RunScript(dir, "dump " + P(dir, "third-start.json") + "\nquit\n", "third");
  EXPECT_EQ(ReadJson(dir.path() / "third-start.json")["conversation"], next_start["conversations"][0]["id"]);
  qvk::store::Store store(dir.path() / "chats.db");
  EXPECT_FALSE(store.GetConversation(two["conversations"][0]["id"].get<int64_t>()).has_value());
}

// --- big conversations ----------------------------------------------------------------------------

// A conversation file for File > Import: `messages` as [parent index or -1, role, content]; the
// branch on screen ends at message `leaf`.
std::string ConversationJson(const std::string& title,
                             const std::vector<std::tuple<int, std::string, std::string>>& messages, size_t leaf) {
  json list = json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& [parent, role, content] = messages[i];
    list.push_back({{"id", i + 1},
                    {"parent", parent < 0 ? json(nullptr) : json(parent + 1)},
                    {"role", role},
                    {"content", content},
                    {"state", "complete"},
                    {"created_ms", 1}});
  }
  return json{{"format", "qwenvk-conversation"},
              {"version", 1},
              {"title", title},
              {"pinned", false},
              {"created_ms", 1},
              {"updated_ms", 2},
              {"settings", json::object()},
              {"current_leaf", leaf + 1},
              {"messages", list}}
      .dump();
}

// The work of a frame is bounded by what the window shows, never by the size of the
// conversation: a megabyte-long message (words, then one word) and a branch of 100,000 messages
// (the most an import takes). Counted, not timed: the dump says how many messages the last frame
// laid out and how many store statements it ran; the script's waits completing says frames kept
// coming.
TEST(DesktopTest, BigConversationsCostWhatIsOnScreen) {
  TempDir dir;
  std::string words;
  for (int i = 0; i < 200'000; ++i) words += "word ";
  const fs::path big = dir.Write(
      "big.json",
      ConversationJson(
          "Big message",
          {{-1, "user", "a big one"}, {0, "assistant", words + "needle"}, {1, "user", std::string(1 << 20, 'y')}}, 2));
  std::vector<std::tuple<int, std::string, std::string>> branch;
  constexpr int kBranch = 99'999;
  for (int i = 0; i < kBranch; ++i) {
    branch.emplace_back(i - 1, i % 2 == 0 ? "user" : "assistant", "message " + std::to_string(i));
  }
  branch.emplace_back(0, "assistant", "a second reply");  // beside message 1: 100,000 in all
  const fs::path long_branch = dir.Write("long.json", ConversationJson("Long branch", branch, kBranch - 1));
  RunScript(dir, "import " + big.string() + "\nwait-branch\nframes 3\ndump " + P(dir, "big_top.json") +
                     "\nsearch needle\ndump " + P(dir, "needle.json") + "\nsearch word\ndump " + P(dir, "word.json") +
                     "\nsearch\nscroll 1\nframes 3\ndump " + P(dir, "big_end.json") + "\nimport " +
                     long_branch.string() + "\nwait-branch\nframes 3\ndump " + P(dir, "long_top.json") +
                     "\nscroll 0.5\nframes 3\ndump " + P(dir, "long_middle.json") +
                     "\nscroll 1\nframes 3\nscreenshot " + P(dir, "long_end.png") + "\ndump " +
                     P(dir, "long_end.json") + "\nquit\n");
  constexpr int kStatementsPerFrame = 5;  // the conversation list, and nothing per message
  constexpr int kMessagesInView = 20;     // an 800-pixel window shows about a dozen short ones
  for (const char* name : {"big_top.json", "big_end.json"}) {
    const json dump = ReadJson(dir.path() / name);
    ASSERT_EQ(dump["branch"].size(), 3u) << name;
    EXPECT_GE(dump["last_frame"]["messages_laid_out"].get<int>(), 1) << name;
    EXPECT_LE(dump["last_frame"]["messages_laid_out"].get<int>(), 2) << name;  // a screen of text each
    EXPECT_LE(dump["last_frame"]["store_statements"].get<int>(), kStatementsPerFrame) << name;
  }
  for (const char* name : {"needle.json", "word.json"}) {
    const json dump = ReadJson(dir.path() / name);
    ASSERT_EQ(dump["search_hits"].size(), 1u) << name;
    EXPECT_EQ(dump["search_hits"][0]["title"], "Big message");
    EXPECT_LT(dump["search_hits"][0]["snippet"].get<std::string>().size(), 400u);
    EXPECT_FALSE(dump["searching"].get<bool>());
  }
  EXPECT_NE(ReadJson(dir.path() / "needle.json")["search_hits"][0]["snippet"].get<std::string>().find("needle"),
            std::string::npos);
  for (const char* name : {"long_top.json", "long_middle.json", "long_end.json"}) {
    const json dump = ReadJson(dir.path() / name);
    ASSERT_EQ(dump["branch"].size(), static_cast<size_t>(kBranch)) << name;
    EXPECT_EQ(dump["branch"][1]["siblings"], 2) << name;
    EXPECT_EQ(dump["branch"][2]["siblings"], 1) << name;
    EXPECT_GE(dump["last_frame"]["messages_laid_out"].get<int>(), 5) << name;
    EXPECT_LE(dump["last_frame"]["messages_laid_out"].get<int>(), kMessagesInView) << name;
    EXPECT_LE(dump["last_frame"]["store_statements"].get<int>(), kStatementsPerFrame) << name;
  }
  ExpectScreenshot(dir.path() / "long_end.png");
}

// Over its context, the next prompt leaves the oldest turns out: the gauge says the context is
// full rather than count past it ("context 116 / 64 tokens").
// A reply the chat followed as it was written stays in view once it ends, with the figures and
// buttons that then appear below it (they were left half under the input box before).
TEST(DesktopTest, AFollowedReplyEndsInViewWithItsButtons) {
  TempDir dir;
  std::string words;
  for (int i = 0; i < 80; ++i) words += "a word and a definition of it ";
  const fs::path talk =
      dir.Write("talk.json", ConversationJson("Talk", {{-1, "user", words}, {0, "assistant", words}}, 1));
  RunScript(dir, "wait-model\nnew-chat\nimport " + talk.string() +
                     "\nwait-branch\nscroll 1\nframes 3\nset temperature 0\nset max_new_tokens 12\nsend What does "
                     "harbor mean?\nwait-reply\nwait-branch\nframes 3\ndump " +
                     P(dir, "end.json") + "\nscreenshot " + P(dir, "end.png") + "\nquit\n");
  const json end = ReadJson(dir.path() / "end.json");
  ASSERT_EQ(end["branch"].size(), 4u) << end.dump(2);
  EXPECT_EQ(end["branch"][3]["role"], "assistant");
  EXPECT_EQ(end["branch"][3]["state"], "complete");
  EXPECT_TRUE(end["last_frame"]["messages_at_bottom"].get<bool>()) << end["last_frame"].dump();
}

TEST(DesktopTest, TheGaugeSaysFullRatherThanCountPastTheContext) {
  TempDir dir;
  {
    qvk::store::Store store(dir.path() / "chats.db");
    store.SetSetting("model.context", "64");
  }
  std::string words;
  for (int i = 0; i < 60; ++i) words += "tokens and more tokens ";
  const fs::path talk =
      dir.Write("talk.json", ConversationJson("Talk", {{-1, "user", words}, {0, "assistant", words}}, 1));
  RunScript(dir, "wait-model\nnew-chat\nframes 2\ndump " + P(dir, "empty.json") + "\nimport " + talk.string() +
                     "\nframes 2\ndump " + P(dir, "long.json") + "\nquit\n");
  const json empty = ReadJson(dir.path() / "empty.json");
  ASSERT_EQ(empty["model"]["context"], 64) << empty.dump(2);
  EXPECT_LT(empty["context_tokens"].get<int>(), 64);
  EXPECT_EQ(empty["context_gauge"], "context " + std::to_string(empty["context_tokens"].get<int>()) + " / 64 tokens");
  const json full = ReadJson(dir.path() / "long.json");
  EXPECT_GT(full["context_tokens"].get<int>(), 64);
  EXPECT_EQ(full["context_gauge"], "context full: 64 tokens (oldest turns are left out)");
}

// A model that crashed the app while loading would crash it at every start, its path being
// saved: a load that never ended is not started again by itself; the user is told and chooses.
TEST(DesktopTest, AModelLoadThatNeverEndedIsNotRetriedAtStart) {
  TempDir dir;
  const std::string model = fs::absolute(kModel).string();
  {
    qvk::store::Store store(dir.path() / "chats.db");
    store.SetSetting("model.path", model);
    store.SetSetting("model.loading", model);  // what a crash during the load leaves behind
  }
  RunScript(dir, "frames 3\nscreenshot " + P(dir, "unfinished.png") + "\ndump " + P(dir, "unfinished.json") +
                     "\nretry-model\nwait-model\ndump " + P(dir, "retried.json") + "\nquit\n");
  const json unfinished = ReadJson(dir.path() / "unfinished.json");
  EXPECT_EQ(unfinished["model"]["status"], "none") << unfinished.dump(2);
  EXPECT_EQ(unfinished["unfinished_load"]["path"], model);
  ExpectMentions(unfinished["unfinished_load"]["message"].get<std::string>(),
                 {"closed while loading qwen2-tiny", "not loaded automatically"});
  ExpectScreenshot(dir.path() / "unfinished.png");
  const json retried = ReadJson(dir.path() / "retried.json");
  EXPECT_EQ(retried["model"]["status"], "ready");
  EXPECT_FALSE(retried.contains("unfinished_load"));
  // The load ended, so the next start loads the model again by itself.
  qvk::store::Store store(dir.path() / "chats.db");
  EXPECT_FALSE(store.GetSetting("model.loading").has_value());
}

TEST(DesktopTest, AModelThatDoesNotLoadIsExplainedAndTheDraftKept) {
  TempDir dir;
  const fs::path broken = dir.Write("broken.gguf", "GGUF but not really");
  RunScript(dir,
            "wait-model failed\n"
            "frames 2\n"
            "type hello\n"
            "key enter\n"
            "frames 2\n"
            "screenshot " +
                P(dir, "failed.png") +
                "\n"
                "dump " +
                P(dir, "failed.json") +
                "\n"
                "quit\n",
            "run", broken);
  const json failed = ReadJson(dir.path() / "failed.json");
  EXPECT_EQ(failed["model"]["status"], "failed");
  EXPECT_NE(failed["model"]["error"].get<std::string>().find("broken.gguf"), std::string::npos) << failed.dump(2);
  EXPECT_EQ(failed["draft"], "hello");
  EXPECT_FALSE(failed["banner"].get<std::string>().empty());
  EXPECT_EQ(failed["conversations"].size(), 0u);
  ExpectScreenshot(dir.path() / "failed.png");
}

// --- attention ---------------------------------------------------------------------------------

// A CSV the attention export wrote: one row of floats per line.
std::vector<std::vector<float>> ReadCsv(const fs::path& path) {
  std::vector<std::vector<float>> rows;
  for (const std::string& line : qvk::test::Split(ReadFile(path), "\n")) {
    if (line.empty()) continue;
    std::vector<float>& row = rows.emplace_back();
    for (const std::string& value : qvk::test::Split(line, ",")) row.push_back(std::stof(value));
  }
  return rows;
}

// A reply's "Attention": its tokens and one head's map beside the chat, every layer and head as
// thumbnails; the cell pointed at as `dump` reports it; the map exported as CSV, NPY and PNG and
// read back; the sink muted; a GQA group's max and a thumbnail's head opened.
TEST(DesktopTest, AReplysAttentionIsShownPointedAtAndExported) {
  TempDir dir;
  RunScript(dir,
            "wait-model\nnew-chat\nset temperature 0\nset max_new_tokens 6\nsend Hello there\nwait-reply\n"
            "attention open 1\nwait-attention\ndump " +
                P(dir, "opened.json") + "\nattention hover 5 2\nattention export-csv " + P(dir, "map.csv") +
                "\nattention export-npy " + P(dir, "map.npy") + "\nattention export-png " + P(dir, "map.png") +
                "\ndump " + P(dir, "hover.json") + "\nattention token 5\nframes 1\ndump " + P(dir, "token.json") +
                "\nattention token 2 to\nkey alt+right\nframes 1\ndump " + P(dir, "token_to.json") +
                "\nattention sink on\nwait-attention\ndump " + P(dir, "muted.json") +
                "\nattention layer 1\nattention group-max 1\nwait-attention\ndump " + P(dir, "group.json") +
                "\nattention thumbnail 1 3\nwait-attention\nattention hover 1 4\nframes 2\nscreenshot " +
                P(dir, "attention.png") + "\ndump " + P(dir, "thumbnail.json") + "\nquit\n");
  const json opened = ReadJson(dir.path() / "opened.json")["attention"];
  const uint32_t tokens = opened["tokens"];
  ASSERT_GT(tokens, 8u);
  EXPECT_EQ(opened["message"], ReadJson(dir.path() / "opened.json")["branch"][1]["id"]);
  EXPECT_LT(opened["message_begin"].get<uint32_t>(), tokens);
  EXPECT_EQ(opened["layer"], 0);
  EXPECT_EQ(opened["heads"], "one");
  EXPECT_EQ(opened["shown"]["rows"], tokens);
  EXPECT_EQ(opened["shown"]["cols"], tokens);
  EXPECT_EQ(opened["shown"]["cell"], 1);
  EXPECT_EQ(opened["thumbnails"], 2);  // qwen2-tiny's layers
  // Token labels: the template's special tokens as written, its newlines visible.
  const json& labels = opened["labels"];
  ASSERT_EQ(labels.size(), tokens);
  EXPECT_EQ(labels[0], "<|im_start|>");
  EXPECT_TRUE(std::any_of(labels.begin(), labels.end(),
                          [](const json& l) { return l.get<std::string>().find("\u23CE") != std::string::npos; }));

  const json hover = ReadJson(dir.path() / "hover.json")["attention"]["hover"];
  EXPECT_EQ(hover["row"], 5);
  EXPECT_EQ(hover["col"], 2);
  EXPECT_FALSE(hover["masked"]);
  EXPECT_EQ(hover["query"], labels[5]);
  EXPECT_EQ(hover["key"], labels[2]);
  const float value = hover["value"];
  EXPECT_GT(value, 0.0f);

  // The CSV: the map on screen, each row a distribution over the keys up to its query.
  const auto csv = ReadCsv(dir.path() / "map.csv");
  ASSERT_EQ(csv.size(), tokens);
  for (uint32_t r = 0; r < tokens; ++r) {
    ASSERT_EQ(csv[r].size(), tokens);
    float sum = 0;
    for (uint32_t c = 0; c < tokens; ++c) {
      if (c > r) {
        EXPECT_EQ(csv[r][c], 0.0f) << r << "," << c;
      }
      sum += csv[r][c];
    }
    EXPECT_NEAR(sum, 1.0f, 1e-4f) << "row " << r;
  }
  EXPECT_EQ(csv[5][2], value);
  // The NPY: float32 (tokens, tokens), the same values.
  const std::string npy = ReadFile(dir.path() / "map.npy");
  ASSERT_GT(npy.size(), 4u * tokens * tokens);
  ExpectMentions(npy.substr(0, npy.size() - 4u * tokens * tokens),
                 {"'descr': '<f4'", "'shape': (" + std::to_string(tokens) + ", " + std::to_string(tokens) + ")"});
  float from_npy = 0;
  std::memcpy(&from_npy, npy.data() + npy.size() - 4u * tokens * tokens + 4u * (5 * tokens + 2), 4);
  EXPECT_EQ(from_npy, value);
  int width = 0, height = 0, channels = 0;
  unsigned char* png = stbi_load((dir.path() / "map.png").c_str(), &width, &height, &channels, 3);
  ASSERT_NE(png, nullptr);
  stbi_image_free(png);
  EXPECT_EQ(width, height);
  EXPECT_EQ(width % static_cast<int>(tokens), 0);

  // A token chosen in the text shades the tokens before it by its row of the map, and (the other
  // way, moved one token on with Alt+Right) the tokens after it by its column.
  const json token = ReadJson(dir.path() / "token.json")["attention"]["token"];
  EXPECT_EQ(token["index"], 5);
  EXPECT_EQ(token["direction"], "from");
  ASSERT_EQ(token["shading"].size(), tokens);
  for (uint32_t k = 0; k < tokens; ++k) {
    EXPECT_EQ(token["shading"][k].get<float>(), k <= 5 ? csv[5][k] : -1.0f) << k;
  }
  const json token_to = ReadJson(dir.path() / "token_to.json")["attention"]["token"];
  EXPECT_EQ(token_to["index"], 3);
  EXPECT_EQ(token_to["direction"], "to");
  for (uint32_t q = 0; q < tokens; ++q) {
    EXPECT_EQ(token_to["shading"][q].get<float>(), q >= 3 ? csv[q][3] : -1.0f) << q;
  }

  // Muting key 0 renormalizes what is left of the row, in the map and every thumbnail.
  const json muted = ReadJson(dir.path() / "muted.json")["attention"];
  EXPECT_TRUE(muted["mute_sink"]);
  EXPECT_NEAR(muted["hover"]["value"].get<float>(), value / (1.0f - csv[5][0]), 1e-5f);
  EXPECT_EQ(muted["thumbnails"], 2);

  const json group = ReadJson(dir.path() / "group.json")["attention"];
  EXPECT_EQ(group["heads"], "group-max");
  EXPECT_EQ(group["shown"]["layer"], 1);
  EXPECT_EQ(group["shown"]["first_head"], 2);  // KV head 1 of 2 serves query heads 2 and 3
  EXPECT_EQ(group["shown"]["plane_heads"], 2);

  const json thumbnail = ReadJson(dir.path() / "thumbnail.json")["attention"];
  EXPECT_EQ(thumbnail["heads"], "one");
  EXPECT_EQ(thumbnail["layer"], 1);
  EXPECT_EQ(thumbnail["index"], 3);
  EXPECT_EQ(thumbnail["shown"]["first_head"], 3);
  EXPECT_TRUE(thumbnail["hover"]["masked"]);  // key 4 comes after query 1
  EXPECT_EQ(thumbnail["hover"]["value"], 0.0f);
  ExpectScreenshot(dir.path() / "attention.png");
}

// With the attention panel open, a reply being written is followed: its map grows a row a token
// from the prompt's last token on, labelled with the reply's tokens as they come; when the reply
// ends, the capture of the whole message replaces the rows. A later run opens the same reply: its
// captured row holds the value the live row showed in the cell pointed at.
TEST(DesktopTest, TheMapOfAReplyGrowsWhileItIsWrittenThenItsCaptureReplacesIt) {
  TempDir dir;
  RunScript(dir,
            "wait-model\nnew-chat\nset temperature 0\nset max_new_tokens 4\nsend Hello there\nwait-reply\n"
            "attention open 1\nwait-attention\nset max_new_tokens 100000\nsend Keep talking\nwait-tokens 4\n"
            "frames 2\nattention hover 0 3\ndump " +
                P(dir, "early.json") + "\nwait-tokens 8\nframes 2\ndump " + P(dir, "later.json") +
                "\nstop\nwait-reply\nwait-attention\ndump " + P(dir, "captured.json") + "\nquit\n");
  const json early = ReadJson(dir.path() / "early.json")["attention"];
  const json later = ReadJson(dir.path() / "later.json")["attention"];
  ASSERT_TRUE(early.contains("live")) << early.dump();
  EXPECT_FALSE(early["live"]["ended"]);
  const uint32_t first_row = early["live"]["first_row"];
  const uint32_t early_rows = early["live"]["rows"];
  EXPECT_GE(early_rows, 1u);
  EXPECT_EQ(early["shown"]["first_row"], first_row);
  EXPECT_EQ(early["shown"]["rows"], early_rows);
  EXPECT_EQ(early["shown"]["cols"], first_row + early_rows);  // keys up to the last query
  EXPECT_EQ(early["labels"].size(), early["tokens"]);
  EXPECT_EQ(early["message_begin"], first_row + 1);  // the prompt, then the reply's tokens
  const float live_value = early["hover"]["value"];
  EXPECT_GT(live_value, 0.0f);
  EXPECT_EQ(early["hover"]["query"], early["labels"][first_row]);
  EXPECT_EQ(early["hover"]["key"], early["labels"][3]);
  // It grew: more rows, over more keys, the same first query.
  EXPECT_EQ(later["live"]["first_row"], first_row);
  EXPECT_GT(later["live"]["rows"].get<uint32_t>(), early_rows);
  EXPECT_EQ(later["shown"]["rows"], later["live"]["rows"]);

  const json captured_json = ReadJson(dir.path() / "captured.json");
  const json& captured = captured_json["attention"];
  EXPECT_FALSE(captured.contains("live"));
  ASSERT_EQ(captured_json["branch"].size(), 4u);
  EXPECT_EQ(captured["message"], captured_json["branch"][3]["id"]);
  EXPECT_EQ(captured["shown"]["first_row"], 0);
  EXPECT_EQ(captured["shown"]["rows"], captured["tokens"]);
  EXPECT_EQ(captured["message_begin"], first_row + 1);

  RunScript(dir,
            "wait-model\nselect Hello there\nwait-branch\nattention open 3\nwait-attention\nattention hover " +
                std::to_string(first_row) + " 3\ndump " + P(dir, "again.json") + "\nquit\n",
            "again");
  const json again = ReadJson(dir.path() / "again.json")["attention"]["hover"];
  EXPECT_NEAR(again["value"].get<float>(), live_value, 1e-6f + 1e-5f * live_value);
}

// A conversation longer than the map's side (1024 tokens): the map is pooled on the GPU; zoomed in
// past its cells, the rows in view are captured again at the cells the heatmap's pixels need,
// which the texture then shows, uploaded again for each zoom and pan; Fit shows the whole map.
TEST(DesktopTest, ZoomingIntoALongConversationCapturesTheRowsInViewFiner) {
  TempDir dir;
  std::string words;
  for (int i = 0; i < 1100; ++i) words += " word";
  RunScript(dir, "wait-model\nnew-chat\nset temperature 0\nset max_new_tokens 2\nsend" + words +
                     "\nwait-reply\nattention open 1\nwait-attention\nframes 2\ndump " + P(dir, "whole.json") +
                     "\nattention zoom 600 500 100\nframes 2\nwait-attention\nframes 2\ndump " + P(dir, "zoomed.json") +
                     "\nattention zoom 640 500 100\nframes 2\nwait-attention\nframes 2\ndump " + P(dir, "panned.json") +
                     "\nattention fit\nframes 2\ndump " + P(dir, "fit.json") + "\nquit\n");
  const json whole = ReadJson(dir.path() / "whole.json")["attention"];
  const uint32_t tokens = whole["tokens"];
  ASSERT_GT(tokens, 1100u);
  EXPECT_EQ(whole["shown"]["cell"], 2);  // pooled to at most 1024 values a side
  EXPECT_EQ(whole["zoom"]["span"], tokens);
  EXPECT_FALSE(whole.contains("detail"));
  const uint32_t pixels = whole["texture"]["width"];
  EXPECT_EQ(whole["texture"]["height"], pixels);
  const uint32_t uploads = whole["texture"]["uploads"];

  const json zoomed = ReadJson(dir.path() / "zoomed.json")["attention"];
  EXPECT_EQ(zoomed["zoom"]["row"], 600);
  EXPECT_EQ(zoomed["zoom"]["col"], 500);
  EXPECT_EQ(zoomed["zoom"]["span"], 100);
  ASSERT_TRUE(zoomed.contains("detail")) << zoomed.dump();
  EXPECT_EQ(zoomed["detail"]["cell"], 1);  // 100 tokens over fewer pixels than that would need 1
  EXPECT_LE(zoomed["detail"]["first_row"].get<uint32_t>(), 600u);
  EXPECT_GE(zoomed["detail"]["end_row"].get<uint32_t>(), 700u);
  EXPECT_GT(zoomed["texture"]["uploads"].get<uint32_t>(), uploads);
  EXPECT_EQ(zoomed["shown"]["cell"], 2);  // the map itself stays as captured

  const json panned = ReadJson(dir.path() / "panned.json")["attention"];
  ASSERT_TRUE(panned.contains("detail"));
  EXPECT_LE(panned["detail"]["first_row"].get<uint32_t>(), 640u);
  EXPECT_GE(panned["detail"]["end_row"].get<uint32_t>(), 740u);
  EXPECT_GT(panned["texture"]["uploads"].get<uint32_t>(), zoomed["texture"]["uploads"].get<uint32_t>());

  const json fit = ReadJson(dir.path() / "fit.json")["attention"];
  EXPECT_EQ(fit["zoom"]["span"], tokens);
  EXPECT_FALSE(fit.contains("detail"));
}

// --- thinking ----------------------------------------------------------------------------------

// How many pixels two screenshots of the same size differ in.
size_t DifferingPixels(const fs::path& a, const fs::path& b) {
  int width_a = 0, height_a = 0, width_b = 0, height_b = 0, channels = 0;
  unsigned char* pixels_a = stbi_load(a.c_str(), &width_a, &height_a, &channels, 4);
  unsigned char* pixels_b = stbi_load(b.c_str(), &width_b, &height_b, &channels, 4);
  size_t differing = 0;
  if (pixels_a != nullptr && pixels_b != nullptr && width_a == width_b && height_a == height_b) {
    for (int i = 0; i < width_a * height_a; ++i) differing += std::memcmp(pixels_a + 4 * i, pixels_b + 4 * i, 3) != 0;
  }
  stbi_image_free(pixels_a);
  stbi_image_free(pixels_b);
  return differing;
}

// A Qwen3 model (the tiny family fixture, its template Qwen3's): a stored reply that thought shows
// its thinking folded, opened by a click (the script's), and the conversation's thinking switch
// (its checkbox, the script, Ctrl+T) is stored with it and exported. A model without the switch
// offers none and refuses one.
TEST(DesktopTest, AReplysThinkingIsFoldedAndTheThinkingSwitchIsKept) {
  TempDir dir;
  const fs::path qwen3 = dir.path() / "Qwen3-tiny";
  fs::create_directory(qwen3);
  qvk::test::LinkModelFolder(qvk::test::TestDataDir() / "family/qwen3-tiny",
                             qvk::test::TestDataDir() / "family/qwen3-tokenizer", qwen3);
  const std::string thought =
      "The user asks why the sky is blue. Sunlight holds every colour; air molecules scatter short "
      "wavelengths far more than long ones (Rayleigh scattering, about 1/wavelength^4), so blue light "
      "reaches the eye from every direction of the sky.";
  const std::string answer = "Because air scatters **blue** light much more than red light, the whole sky glows blue.";
  const fs::path conversation =
      dir.Write("thinking.json", ConversationJson("Why is the sky blue?",
                                                  {{-1, "user", "Why is the sky blue?"},
                                                   {0, "assistant", "<think>\n" + thought + "\n</think>\n\n" + answer}},
                                                  1));
  RunScript(dir,
            "wait-model\nimport " + conversation.string() + "\nwait-branch\nframes 3\ndump " + P(dir, "folded.json") +
                "\nscreenshot " + P(dir, "folded.png") + "\nthinking open 1\nframes 3\ndump " + P(dir, "open.json") +
                "\nscreenshot " + P(dir, "open.png") + "\nthinking off\nwait-branch\nframes 2\ndump " +
                P(dir, "off.json") + "\nexport-json " + P(dir, "exported.json") +
                "\nkey ctrl+t\nwait-branch\nframes 2\ndump " + P(dir, "toggled.json") +
                "\nthinking fold 1\nframes 2\ndump " + P(dir, "refolded.json") + "\nquit\n",
            "thinking", qwen3);

  const json folded = ReadJson(dir.path() / "folded.json");
  ASSERT_EQ(folded["branch"].size(), 2u) << folded.dump(2);
  EXPECT_EQ(folded["branch"][1]["content"], "<think>\n" + thought + "\n</think>\n\n" + answer);  // stored as written
  EXPECT_EQ(folded["branch"][1]["thinking_open"], false);
  EXPECT_EQ(folded["thinking"]["switch"], true);  // Qwen3's default
  EXPECT_TRUE(folded["thinking"]["stored"].is_null());
  EXPECT_EQ(ReadJson(dir.path() / "open.json")["branch"][1]["thinking_open"], true);
  ExpectScreenshot(dir.path() / "folded.png");
  ExpectScreenshot(dir.path() / "open.png");
  // Opened, the thinking's three lines of text appear between the header and the answer.
  EXPECT_GT(DifferingPixels(dir.path() / "folded.png", dir.path() / "open.png"), 2000u);

  const json off = ReadJson(dir.path() / "off.json");
  EXPECT_EQ(off["thinking"]["switch"], false);
  EXPECT_EQ(off["thinking"]["stored"], false);
  EXPECT_EQ(ReadJson(dir.path() / "exported.json")["enable_thinking"], false);
  const json toggled = ReadJson(dir.path() / "toggled.json");
  EXPECT_EQ(toggled["thinking"]["switch"], true);
  EXPECT_EQ(toggled["thinking"]["stored"], true);
  EXPECT_EQ(ReadJson(dir.path() / "refolded.json")["branch"][1]["thinking_open"], false);
  qvk::store::Store store(dir.path() / "chats.db");
  EXPECT_EQ(store.GetConversation(folded["conversation"].get<int64_t>())->enable_thinking, true);

  // The fixture's Qwen2.5 template has no switch: none on screen, and the script's is refused.
  AppProcess app(dir, "wait-model\nnew-chat\ndump " + P(dir, "qwen2.json") + "\nthinking off\nquit\n", "qwen2");
  EXPECT_NE(app.Wait(), 0);
  ExpectMentions(app.log(), {"no thinking switch", "enable_thinking"});
  EXPECT_TRUE(ReadJson(dir.path() / "qwen2.json")["thinking"]["switch"].is_null());
}

// --- the benchmark workbench -------------------------------------------------------------------

// A short benchmark of the fixture model on this device (its kernels shown at once, no run
// selected) beside an H200 run imported from a file: both selected, compared test by test, charted, the roofline of the
// local run (its device peak measured), the table filtered, the selection exported and imported back; a file that is
// not a benchmark changes nothing and says why.
TEST(DesktopTest, TheBenchmarkWorkbenchRunsImportsComparesAndCharts) {
  TempDir dir;
  const fs::path h200 = qvk::test::TestDataDir() / "bench" / "qwenvk-h200-qwen2.5-7B-Q4_0.json";
  RunScript(dir,
            "wait-model\n"
            "key ctrl+b\n"
            "bench set p 16\n"
            "bench set n 4\n"
            "bench set repetitions 2\n"
            "bench run\n"
            "dump " +
                P(dir, "running.json") +
                "\n"
                "wait-bench\n"
                "bench chart kernels\n"
                "frames 2\n"
                "dump " +
                P(dir, "just-run.json") +
                "\n"
                "bench import " +
                h200.string() +
                "\n"
                "bench toggle 1\n"
                "bench chart compare\n"
                "frames 3\n"
                "screenshot " +
                P(dir, "compare.png") +
                "\n"
                "dump " +
                P(dir, "compared.json") +
                "\n"
                "bench chart speed\n"
                "frames 2\n"
                "bench chart depth\n"
                "frames 2\n"
                "bench chart kernels\n"
                "frames 2\n"
                "bench chart roofline\n"
                "frames 3\n"
                "screenshot " +
                P(dir, "roofline.png") +
                "\n"
                "dump " +
                P(dir, "roofline.json") +
                "\n"
                "bench filter device h200\n"
                "bench sort id asc\n"
                "dump " +
                P(dir, "filtered.json") +
                "\n"
                "bench export " +
                P(dir, "export.json") +
                "\n"
                "quit\n");
  const json running = ReadJson(dir.path() / "running.json")["bench"];
  EXPECT_TRUE(running["open"]);
  EXPECT_TRUE(running["running"]);
  // The peak, then each test's warm-up, 2 timed runs and profile.
  EXPECT_EQ(running["total"], 1 + 2 * 4);

  // With no run selected, the kernel chart shows the run just saved.
  const json just_run = ReadJson(dir.path() / "just-run.json")["bench"];
  EXPECT_TRUE(just_run["selected"].empty());
  ASSERT_TRUE(just_run.contains("detail")) << just_run.dump();
  EXPECT_EQ(just_run["detail"]["run"], just_run["saved"]);
  EXPECT_FALSE(just_run["detail"]["kernels"].empty());

  const json compared = ReadJson(dir.path() / "compared.json")["bench"];
  ASSERT_EQ(compared["table"].size(), 2u);
  const json& imported = compared["table"][0];  // the newest first
  const json& local = compared["table"][1];
  EXPECT_EQ(imported["device"], "NVIDIA H200");
  EXPECT_EQ(local["source"], "qwenvk");
  EXPECT_EQ(local["model"], "qwen2-tiny");
  EXPECT_EQ(compared["saved"], local["id"]);
  EXPECT_EQ(compared["selected"], json::array({imported["id"], local["id"]}));
  EXPECT_EQ(compared["chart"], "compare");
  // pp16, pp512, tg4, tg128: each run has two of them; the H200's are the baseline.
  ASSERT_EQ(compared["compare"].size(), 4u);
  std::vector<std::string> tests;
  for (const json& line : compared["compare"]) tests.push_back(line["test"]);
  EXPECT_EQ(tests, (std::vector<std::string>{"pp16", "pp512", "tg4", "tg128"}));
  const json& pp512 = compared["compare"][1];
  EXPECT_DOUBLE_EQ(pp512["tokens_per_s"][0].get<double>(), 2690.752400893809);
  EXPECT_TRUE(pp512["tokens_per_s"][1].is_null());
  const json& pp16 = compared["compare"][0];
  EXPECT_TRUE(pp16["tokens_per_s"][0].is_null());
  EXPECT_GT(pp16["tokens_per_s"][1].get<double>(), 0);
  EXPECT_DOUBLE_EQ(compared["compare"][3]["ratio"][0].get<double>(), 1.0);

  const json roofline = ReadJson(dir.path() / "roofline.json")["bench"];
  EXPECT_EQ(roofline["chart"], "roofline");
  EXPECT_EQ(roofline["detail"]["run"], local["id"]);
  EXPECT_EQ(roofline["detail"]["test"], "pp16");
  EXPECT_TRUE(roofline["detail"]["has_peaks"]);
  ASSERT_FALSE(roofline["detail"]["kernels"].empty());
  EXPECT_EQ(roofline["detail"]["roofline"].size(), roofline["detail"]["kernels"].size());
  double shares = 0;
  for (const json& k : roofline["detail"]["kernels"]) shares += k["share"].get<double>();
  EXPECT_NEAR(shares, 1.0, 1e-6);

  const json filtered = ReadJson(dir.path() / "filtered.json")["bench"];
  ASSERT_EQ(filtered["table"].size(), 1u);
  EXPECT_EQ(filtered["table"][0]["device"], "NVIDIA H200");

  // The export holds both selected runs and imports into a fresh database as two runs.
  const json exported = ReadJson(dir.path() / "export.json");
  EXPECT_EQ(exported["format"], "qwenvk-bench");
  EXPECT_EQ(exported["runs"].size(), 2u);
  TempDir other;
  RunScript(other, "wait-model\nbench open\nbench import " + P(dir, "export.json") + "\ndump " +
                       P(other, "reimported.json") + "\nquit\n");
  EXPECT_EQ(ReadJson(other.path() / "reimported.json")["bench"]["table"].size(), 2u);

  // A file that is not a benchmark: the script stops on the banner's sentence, nothing is added.
  const fs::path bad = dir.Write("bad.json", R"({"format": "qwenvk-bench", "version": 9})");
  AppProcess app(dir, "wait-model\nbench open\nbench import " + bad.string() + "\nquit\n", "bad");
  EXPECT_NE(app.Wait(), 0);
  ExpectMentions(app.log(), {"bad.json was not imported, nothing changed", "version"});
  RunScript(dir, "wait-model\nbench open\ndump " + P(dir, "after-bad.json") + "\nquit\n", "after-bad");
  EXPECT_EQ(ReadJson(dir.path() / "after-bad.json")["bench"]["table"].size(), 2u);
  ExpectScreenshot(dir.path() / "compare.png");
  ExpectScreenshot(dir.path() / "roofline.png");
}

// --- the bundled model and the welcome ---------------------------------------------------------

// No --model and none in the settings: the bundled demo model opens, and the first start shows
// the welcome over it. It is remembered, so the second start opens the model without it; Help >
// Welcome (the script's `open welcome`) shows it again.
TEST(DesktopTest, TheFirstStartOpensTheBundledModelWithTheWelcomeOnce) {
  TempDir dir;
  RunScript(dir,
            "wait-model\nframes 3\nscreenshot " + P(dir, "welcome.png") + "\ndump " + P(dir, "first.json") +
                "\nwelcome start-chatting\nframes 2\ndump " + P(dir, "dismissed.json") + "\nquit\n",
            "first", std::nullopt);
  const json first = ReadJson(dir.path() / "first.json");
  EXPECT_EQ(first["model"]["status"], "ready");
  EXPECT_EQ(first["model"]["name"], "qwen2-tiny");
  EXPECT_EQ(first["dialog"], "welcome");
  EXPECT_EQ(first["banner"], "");
  ExpectScreenshot(dir.path() / "welcome.png");
  EXPECT_EQ(ReadJson(dir.path() / "dismissed.json")["dialog"], "none");

  RunScript(dir,
            "wait-model\nframes 3\ndump " + P(dir, "second.json") + "\nopen welcome\nframes 2\ndump " +
                P(dir, "again.json") + "\nquit\n",
            "second", std::nullopt);
  const json second = ReadJson(dir.path() / "second.json");
  EXPECT_EQ(second["model"]["status"], "ready");
  EXPECT_EQ(second["model"]["name"], "qwen2-tiny");
  EXPECT_EQ(second["dialog"], "none");
  EXPECT_EQ(ReadJson(dir.path() / "again.json")["dialog"], "welcome");
  // The bundled model is what opens when none is chosen, not a choice kept in the settings.
  qvk::store::Store store(dir.path() / "chats.db");
  EXPECT_FALSE(store.GetSetting("model.path").has_value());
  EXPECT_TRUE(store.GetSetting("ui.welcome_shown").has_value());
}

// The welcome's "Open a model..." opens the file picker; the model chosen there loads at once and
// is kept in the settings, so the next start opens it.
TEST(DesktopTest, TheWelcomesOpenAModelOpensThePickerAndLoadsTheChoice) {
  TempDir dir;
  const fs::path gguf = fs::absolute(qvk::test::TestDataDir() / "gguf" / "qwen2-tiny-q8_0.gguf");
  RunScript(dir,
            "wait-model\nwelcome open-model\nframes 2\nscreenshot " + P(dir, "picker.png") + "\ndump " +
                P(dir, "picker.json") + "\npick " + gguf.string() + "\nwait-model\ndump " + P(dir, "chosen.json") +
                "\nquit\n",
            "first", std::nullopt);
  EXPECT_EQ(ReadJson(dir.path() / "picker.json")["dialog"], "model-picker");
  ExpectScreenshot(dir.path() / "picker.png");
  const json chosen = ReadJson(dir.path() / "chosen.json");
  EXPECT_EQ(chosen["dialog"], "none");
  EXPECT_EQ(chosen["model"]["status"], "ready");
  EXPECT_EQ(chosen["model"]["name"], "qwen2-tiny-q8_0.gguf");

  RunScript(dir, "wait-model\ndump " + P(dir, "next.json") + "\nquit\n", "next", std::nullopt);
  const json next = ReadJson(dir.path() / "next.json");
  EXPECT_EQ(next["model"]["name"], "qwen2-tiny-q8_0.gguf");
  EXPECT_EQ(next["dialog"], "none");
}

// Settings' split fields: the model reloads split across two devices of its own on the one GPU,
// the status line names each with its layers, a reply is the one device's, and the next start
// keeps the split; "off" puts the model back on the app's device.
TEST(DesktopTest, TheSplitSettingLoadsTheModelAcrossDevicesAndIsKept) {
  TempDir dir;
  const std::string chat = "new-chat\nset temperature 0\nset max_new_tokens 6\nsend Hello\nwait-reply\n";
  RunScript(dir, "wait-model\n" + chat + "dump " + P(dir, "one.json") + "\nsplit 0,0 1,1\nwait-model\n" + chat +
                     "frames 2\nscreenshot " + P(dir, "split.png") + "\ndump " + P(dir, "split.json") + "\nquit\n");
  const json one = ReadJson(dir.path() / "one.json"), split = ReadJson(dir.path() / "split.json");
  EXPECT_TRUE(one["model"]["devices"].empty());
  ASSERT_EQ(split["model"]["status"], "ready") << split["model"]["error"];
  ASSERT_EQ(split["model"]["devices"].size(), 2u);
  EXPECT_NE(split["model"]["devices"][1].get<std::string>().find("layers 1-1"), std::string::npos);
  ASSERT_EQ(split["branch"].size(), 2u);
  EXPECT_EQ(split["branch"][1]["content"], one["branch"][1]["content"]);
  ExpectScreenshot(dir.path() / "split.png");

  RunScript(
      dir,
      "wait-model\ndump " + P(dir, "next.json") + "\nsplit off\nwait-model\ndump " + P(dir, "off.json") + "\nquit\n",
      "next");
  EXPECT_EQ(ReadJson(dir.path() / "next.json")["model"]["devices"].size(), 2u);
  const json off = ReadJson(dir.path() / "off.json");
  EXPECT_EQ(off["model"]["status"], "ready");
  EXPECT_TRUE(off["model"]["devices"].empty());
}

// With --model the welcome stays away (it is about the bundled model), and without one a missing
// bundled model is said in the banner, with where to choose a model.
TEST(DesktopTest, NoWelcomeWithAModelAndAMissingBundledModelIsExplained) {
  TempDir dir;
  RunScript(dir, "wait-model\nframes 2\ndump " + P(dir, "named.json") + "\nquit\n", "named");
  EXPECT_EQ(ReadJson(dir.path() / "named.json")["dialog"], "none");

  TempDir fresh;
  RunScript(fresh, "frames 3\ndump " + P(fresh, "missing.json") + "\nquit\n", "missing", std::nullopt,
            fresh.path() / "wordnet-chat");
  const json missing = ReadJson(fresh.path() / "missing.json");
  EXPECT_EQ(missing["model"]["status"], "none");
  EXPECT_EQ(missing["dialog"], "none");
  EXPECT_EQ(missing["banner"],
            "No model is chosen and the bundled demo model is missing: choose a model in File > Settings.");
}

// Closing the app while a reply streams ends the reply and commits it, complete.
TEST(DesktopTest, QuittingMidReplyCommitsTheReply) {
  TempDir dir;
  RunScript(dir,
            "wait-model\n"
            "new-chat\n"
            "set temperature 0\n"
            "set max_new_tokens 100000\n"
            "send Keep talking\n"
            "wait-tokens 5\n"
            "quit\n");
  qvk::store::Store store(dir.path() / "chats.db");
  const auto conversations = store.ListConversations();
  ASSERT_EQ(conversations.size(), 1u);
  const auto thread = store.Thread(conversations[0].current_leaf);
  ASSERT_EQ(thread.size(), 2u);
  EXPECT_EQ(thread[1].state, qvk::store::MessageState::Complete);
  EXPECT_FALSE(thread[1].content.empty());
  EXPECT_GE(thread[1].tokens, 5u);
}

// Kill -9 while a reply streams; the next start shows the conversation with the partial reply
// marked interrupted, and Continue extends it.
TEST(DesktopTest, SigkillMidReplyLosesNothing) {
  TempDir dir;
  const fs::path db = dir.path() / "chats.db";
  {
    AppProcess app(dir,
                   "wait-model\n"
                   "new-chat\n"
                   "set temperature 0\n"
                   "set max_new_tokens 100000\n"
                   "send Tell me a very long story\n"
                   "wait-tokens 1000000000\n",
                   "killed");
    // Kill once a flushed partial reply is in the database (flushes happen every 500 ms).
    ASSERT_GE(WaitForPartialReply(db, 0).size(), 20u) << "no partial reply reached the database\n" << app.log();
    app.Kill();
    EXPECT_EQ(app.Wait(), -SIGKILL);
  }
  std::string partial;
  int64_t conversation = 0;
  {
    qvk::store::Store store(db);  // opening marks the streaming row interrupted
    const auto conversations = store.ListConversations();
    ASSERT_EQ(conversations.size(), 1u);
    conversation = conversations[0].id;
    EXPECT_EQ(conversations[0].title, "Tell me a very long story");
    const auto thread = store.Thread(conversations[0].current_leaf);
    ASSERT_EQ(thread.size(), 2u);
    EXPECT_EQ(thread[0].content, "Tell me a very long story");
    EXPECT_EQ(thread[1].state, qvk::store::MessageState::Interrupted);
    partial = thread[1].content;
    EXPECT_GE(partial.size(), 20u);
  }
  RunScript(dir,
            "wait-model\n"
            "select Tell me a very long story\n"
            "frames 2\n"
            "screenshot " +
                P(dir, "restarted.png") +
                "\n"
                "dump " +
                P(dir, "restarted.json") +
                "\n"
                "set max_new_tokens 8\n"
                "continue\n"
                "wait-reply\n"
                "dump " +
                P(dir, "continued.json") +
                "\n"
                "quit\n",
            "restarted");
  const json restarted = ReadJson(dir.path() / "restarted.json");
  ASSERT_EQ(restarted["branch"].size(), 2u);
  EXPECT_EQ(restarted["branch"][1]["state"], "interrupted");
  EXPECT_EQ(restarted["branch"][1]["content"], partial);
  ExpectScreenshot(dir.path() / "restarted.png");
  const json continued = ReadJson(dir.path() / "continued.json");
  ASSERT_EQ(continued["branch"].size(), 2u);
  EXPECT_EQ(continued["branch"][1]["state"], "complete");
  const std::string extended = continued["branch"][1]["content"];
  EXPECT_EQ(extended.substr(0, partial.size()), partial);
  EXPECT_GT(extended.size(), partial.size());
  EXPECT_EQ(continued["conversation"], conversation);
}

// --- a remote engine -----------------------------------------------------------------------------

// The app as the client of `qwenvk serve` (Settings > Engines): a conversation; the server
// killed mid-reply leaves the partial reply interrupted and a banner naming the server; once the
// server is back on its port, Continue finishes the reply in place.
TEST(DesktopTest, ARemoteServerKilledMidReplyIsExplainedAndContinueFinishesTheReply) {
  TempDir dir;
  const fs::path db = dir.path() / "chats.db";
  auto serve = std::make_unique<ServeProcess>(dir.path() / "serve.log", 0);
  const uint16_t port = serve->port();
  const std::string url = serve->url();
  {
    AppProcess app(dir,
                   "wait-model\n"
                   "engine remote " +
                       url +
                       "\n"
                       "new-chat\n"
                       "set temperature 0\n"
                       "set max_new_tokens 8\n"
                       "send Hello\n"
                       "wait-reply\n"
                       "dump " +
                       P(dir, "first.json") +
                       "\n"
                       "set max_new_tokens 100000\n"
                       "send Tell me a very long story\n"
                       "wait-reply\n"
                       "frames 2\n"
                       "screenshot " +
                       P(dir, "interrupted.png") +
                       "\n"
                       "dump " +
                       P(dir, "interrupted.json") + "\nquit\n",
                   "killed");
    ASSERT_GE(WaitForPartialReply(db, 1).size(), 20u) << "no partial reply reached the database\n" << app.log();
    serve->Kill();
    ASSERT_EQ(app.Wait(), 0) << app.log();
  }
  const json first = ReadJson(dir.path() / "first.json");
  ASSERT_EQ(first["branch"].size(), 2u);
  EXPECT_EQ(first["branch"][1]["state"], "complete");
  EXPECT_FALSE(first["branch"][1]["content"].get<std::string>().empty());
  EXPECT_EQ(first["banner"], "");

  const json interrupted = ReadJson(dir.path() / "interrupted.json");
  ASSERT_EQ(interrupted["branch"].size(), 4u);
  EXPECT_EQ(interrupted["branch"][3]["state"], "interrupted");
  const std::string partial = interrupted["branch"][3]["content"];
  EXPECT_GE(partial.size(), 20u);
  EXPECT_EQ(interrupted["banner_kind"], "error");
  ExpectMentions(interrupted["banner"].get<std::string>(), {url, "stopped sending", "Continue"});
  ExpectScreenshot(dir.path() / "interrupted.png");

  serve = std::make_unique<ServeProcess>(dir.path() / "serve2.log", port);
  RunScript(dir,
            "wait-model\n"
            "select Hello\n"
            "set max_new_tokens 8\n"
            "continue\n"
            "wait-reply\n"
            "dump " +
                P(dir, "continued.json") + "\nquit\n",
            "continued");
  const json continued = ReadJson(dir.path() / "continued.json");
  ASSERT_EQ(continued["branch"].size(), 4u);
  EXPECT_EQ(continued["branch"][3]["state"], "complete");
  EXPECT_EQ(continued["branch"][3]["id"], interrupted["branch"][3]["id"]);  // continued in place
  const std::string extended = continued["branch"][3]["content"];
  EXPECT_EQ(extended.substr(0, partial.size()), partial);
  EXPECT_GT(extended.size(), partial.size());
  EXPECT_EQ(continued["banner"], "");
}

TEST(DesktopTest, DamagedDatabaseOffersAWayOut) {
  TempDir dir;
  const std::string garbage = "this is not an SQLite database, but it is somebody's file\n";
  dir.Write("chats.db", garbage);
  RunScript(dir,
            "frames 2\n"
            "screenshot " +
                P(dir, "damaged.png") +
                "\n"
                "dump " +
                P(dir, "damaged.json") +
                "\n"
                "database check\n"
                "dump " +
                P(dir, "checked.json") +
                "\n"
                "database fresh\n"
                "wait-model\n"
                "dump " +
                P(dir, "fresh.json") +
                "\n"
                "quit\n");
  const json damaged = ReadJson(dir.path() / "damaged.json");
  const std::string message = damaged["database_problem"]["message"];
  EXPECT_NE(message.find("chats.db"), std::string::npos) << message;
  ExpectScreenshot(dir.path() / "damaged.png");
  EXPECT_FALSE(
      ReadJson(dir.path() / "checked.json")["database_problem"]["integrity_report"].get<std::string>().empty());
  const json fresh = ReadJson(dir.path() / "fresh.json");
  EXPECT_FALSE(fresh.contains("database_problem"));
  EXPECT_EQ(fresh["conversations"].size(), 0u);
  // The damaged file was kept, byte for byte, beside the new one.
  bool kept = false;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    if (entry.path().filename().string().starts_with("chats.db.damaged-")) kept = ReadFile(entry.path()) == garbage;
  }
  EXPECT_TRUE(kept);
}

// Another program holds the write lock: sending fails with a message that says so, and what
// the user typed stays in the box.
TEST(DesktopTest, LockedDatabaseKeepsTheDraft) {
  TempDir dir;
  const fs::path db = dir.path() / "chats.db";
  int64_t conversation = 0;
  {
    qvk::store::Store store(db);
    conversation = store.CreateConversation("Earlier chat", {});
    store.AddMessage(conversation, 0, "user", "an earlier question", qvk::store::MessageState::Complete);
  }
  sqlite3* holder = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &holder), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(holder, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  RunScript(dir,
            "wait-model\n"
            "select Earlier chat\n"
            "type keep this text\n"
            "key enter\n"
            "frames 2\n"
            "screenshot " +
                P(dir, "locked.png") +
                "\n"
                "dump " +
                P(dir, "locked.json") +
                "\n"
                "quit\n");
  sqlite3_exec(holder, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(holder);
  const json locked = ReadJson(dir.path() / "locked.json");
  EXPECT_EQ(locked["draft"], "keep this text");
  EXPECT_NE(locked["banner"].get<std::string>().find("another"), std::string::npos) << locked.dump(2);
  EXPECT_EQ(locked["banner_kind"], "error");
  EXPECT_EQ(locked["branch"].size(), 1u);
  EXPECT_EQ(locked["conversation"], conversation);
}

}  // namespace
