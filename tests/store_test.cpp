// Sections: helpers / conversations / messages and branches / settings / search / schema and
// migration / damaged, newer, read-only and locked files / durability and concurrency / backup
#include "store/store.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "store/sql.h"
#include "test_util.h"

namespace qvk::store {
namespace {

using namespace std::literals;
using test::ErrorOf;
using test::ExpectMentions;

// A raw connection, for building and holding databases the way another program would.
class RawDatabase {
 public:
  explicit RawDatabase(const std::filesystem::path& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 2000);
  }
  ~RawDatabase() { sqlite3_close(db_); }
  RawDatabase(const RawDatabase&) = delete;
  RawDatabase& operator=(const RawDatabase&) = delete;

  void Execute(const std::string& sql) {
    char* message = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message), SQLITE_OK) << sql << ": " << message;
    sqlite3_free(message);
  }
  // The result code of statements expected to fail.
  int ExecuteCode(const std::string& sql) { return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr); }
  // The first column of the first row.
  int64_t Scalar(const char* sql) {
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql, -1, &statement, nullptr), SQLITE_OK) << sql;
    EXPECT_EQ(sqlite3_step(statement), SQLITE_ROW) << sql;
    const int64_t value = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    return value;
  }

 private:
  sqlite3* db_ = nullptr;
};

StoreErrorKind KindOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const StoreError& e) {
    return e.kind();
  }
  ADD_FAILURE() << "no StoreError thrown";
  return StoreErrorKind::InvalidImport;
}

class StoreTest : public ::testing::Test {
 protected:
  std::filesystem::path DbPath() const { return dir_.path() / "data" / "conversations.db"; }
  test::TempDir dir_;
};

// --- conversations ------------------------------------------------------------------------------
TEST_F(StoreTest, CreatesItsFolderAndTheCurrentSchema) {
  Store store(DbPath());
  EXPECT_TRUE(std::filesystem::exists(DbPath()));
  EXPECT_EQ(store.schema_version(), Store::kSchemaVersion);
  EXPECT_FALSE(store.read_only());
  EXPECT_EQ(store.IntegrityCheck(), "ok");
  EXPECT_TRUE(store.ListConversations().empty());
}

TEST_F(StoreTest, ConversationsCreateReadUpdate) {
  Store store(DbPath());
  ConversationSettings settings;
  settings.system_prompt = "You are terse.";
  settings.temperature = 0.25f;
  settings.top_k = 7;
  settings.seed = 18446744073709551615ull;
  settings.random_seed = false;
  const uint64_t revision = store.revision();
  const Id first = store.CreateConversation("First", settings);
  EXPECT_GT(store.revision(), revision);
  const Id second = store.CreateConversation("Second", {});
  store.AddMessage(second, 0, "user", "hi", MessageState::Complete);  // touches `second`

  std::optional<Conversation> got = store.GetConversation(first);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->title, "First");
  EXPECT_EQ(got->settings, settings);
  EXPECT_FALSE(got->pinned);
  EXPECT_EQ(got->current_leaf, 0);
  EXPECT_GT(got->created_ms, 0);
  EXPECT_FALSE(store.GetConversation(first + second + 100));

  std::vector<Conversation> list = store.ListConversations();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, second);  // most recently updated first

  store.SetPinned(first, true);
  store.RenameConversation(first, "Renamed ✓");
  settings.max_new_tokens = 77;
  store.SetConversationSettings(first, settings);
  list = store.ListConversations();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, first);  // pinned first
  EXPECT_TRUE(list[0].pinned);
  EXPECT_EQ(list[0].title, "Renamed ✓");
  EXPECT_EQ(list[0].settings.max_new_tokens, 77u);

  ExpectMentions(ErrorOf([&] { store.RenameConversation(999, "x"); }), {"999", "does not exist"});
  settings.temperature = 1e6f;
  ExpectMentions(ErrorOf([&] { store.SetConversationSettings(first, settings); }), {"temperature"});
  EXPECT_EQ(store.GetConversation(first)->settings.temperature, 0.25f);
}

TEST_F(StoreTest, DeleteHidesRestoreUndoesPurgeRemoves) {
  Store store(DbPath());
  const Id kept = store.CreateConversation("kept", {});
  const Id gone = store.CreateConversation("zebra talk", {});
  const Id message = store.AddMessage(gone, 0, "user", "zebra stripes", MessageState::Complete);

  store.DeleteConversation(gone);
  EXPECT_EQ(store.ListConversations().size(), 1u);
  EXPECT_FALSE(store.GetConversation(gone));
  EXPECT_TRUE(store.Search("zebra").empty());

  store.RestoreConversation(gone);
  EXPECT_EQ(store.ListConversations().size(), 2u);
  // Title and message both match: one hit, the title's.
  const std::vector<SearchHit> restored = store.Search("zebra");
  ASSERT_EQ(restored.size(), 1u);
  EXPECT_EQ(restored[0].conversation_id, gone);
  EXPECT_EQ(restored[0].message_id, 0);
  EXPECT_EQ(store.Search("stripes").size(), 1u);

  store.DeleteConversation(gone);
  store.PurgeDeleted();
  EXPECT_FALSE(store.GetMessage(message));
  EXPECT_TRUE(store.AllMessages(gone).empty());
  ExpectMentions(ErrorOf([&] { store.RestoreConversation(gone); }), {"does not exist"});
  ASSERT_EQ(store.ListConversations().size(), 1u);
  EXPECT_EQ(store.ListConversations()[0].id, kept);
  EXPECT_EQ(store.IntegrityCheck(), "ok");
}

// --- messages and branches ----------------------------------------------------------------------
TEST_F(StoreTest, MessagesCreateReadUpdate) {
  Store store(DbPath());
  const Id conversation = store.CreateConversation("c", {});
  const Id user = store.AddMessage(conversation, 0, "user", "Question?", MessageState::Complete);
  const Id reply = store.AddMessage(conversation, user, "assistant", "", MessageState::Streaming);
  EXPECT_EQ(store.GetConversation(conversation)->current_leaf, reply);

  std::optional<Message> got = store.GetMessage(reply);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->conversation_id, conversation);
  EXPECT_EQ(got->parent_id, user);
  EXPECT_EQ(got->role, "assistant");
  EXPECT_EQ(got->content, "");
  EXPECT_EQ(got->state, MessageState::Streaming);

  store.UpdateMessage(reply, "Answer\0with a NUL"sv, MessageState::Complete);
  store.SetMessageStats(reply, 42, 12.5, 0.75, "dropped 2 old turns");
  got = store.GetMessage(reply);
  EXPECT_EQ(got->content, "Answer\0with a NUL"sv);
  EXPECT_EQ(got->state, MessageState::Complete);
  EXPECT_EQ(got->tokens, 42u);
  EXPECT_EQ(got->tokens_per_s, 12.5);
  EXPECT_EQ(got->time_to_first_token_s, 0.75);
  EXPECT_EQ(got->notice, "dropped 2 old turns");

  const Id other = store.CreateConversation("other", {});
  ExpectMentions(ErrorOf([&] { store.AddMessage(other, user, "user", "x", MessageState::Complete); }),
                 {"belongs to conversation"});
  ExpectMentions(ErrorOf([&] { store.AddMessage(conversation, 0, "robot", "x", MessageState::Complete); }),
                 {"robot", "role"});
  ExpectMentions(ErrorOf([&] { store.AddMessage(12345, 0, "user", "x", MessageState::Complete); }),
                 {"12345", "does not exist"});
  ExpectMentions(ErrorOf([&] { store.UpdateMessage(999, "x", MessageState::Complete); }), {"999"});
  ExpectMentions(ErrorOf([&] { store.SetCurrentLeaf(other, reply); }), {"belongs to conversation"});
  EXPECT_EQ(store.AllMessages(conversation).size(), 2u);
  EXPECT_TRUE(store.AllMessages(other).empty());
}

// What the store refuses is what an import refuses (exchange_test checks the largest round trip).
TEST_F(StoreTest, RefusesTextLongerThanAnImportAccepts) {
  Store store(DbPath());
  const Id c = store.CreateConversation(std::string(kMaxTitleBytes, 't'), {});
  const Id m = store.AddMessage(c, 0, "user", std::string(kMaxTextBytes, 'm'), MessageState::Complete);
  store.UpdateMessage(m, std::string(kMaxTextBytes, 'u'), MessageState::Complete);
  store.SetMessageStats(m, 1, 1, 1, std::string(kMaxNoticeBytes, 'n'));
  const uint64_t revision = store.revision();

  const std::string title(kMaxTitleBytes + 1, 't'), text(kMaxTextBytes + 1, 'x'), notice(kMaxNoticeBytes + 1, 'n');
  const std::vector<std::pair<std::function<void()>, std::vector<std::string>>> refused = {
      {[&] { store.CreateConversation(title, {}); }, {"title is 4097 bytes long", "at most 4096 bytes"}},
      {[&] { store.RenameConversation(c, title); }, {"title is 4097 bytes long", "Shorten it"}},
      {[&] { store.AddMessage(c, m, "assistant", text, MessageState::Complete); },
       {"message is 8388609 bytes long", "at most 8388608 bytes"}},
      {[&] { store.UpdateMessage(m, text, MessageState::Complete); }, {"message is 8388609 bytes long"}},
      {[&] { store.SetMessageStats(m, 2, 2, 2, notice); }, {"notice is 4097 bytes long", "at most 4096 bytes"}},
  };
  for (const auto& [write, mentions] : refused) {
    EXPECT_EQ(KindOf(write), StoreErrorKind::TooLarge);
    ExpectMentions(ErrorOf(write), mentions);
  }
  EXPECT_EQ(store.revision(), revision);
  EXPECT_EQ(store.ListConversations().size(), 1u);
  EXPECT_EQ(store.GetConversation(c)->title.size(), kMaxTitleBytes);
  EXPECT_EQ(store.AllMessages(c).size(), 1u);
  EXPECT_EQ(store.GetMessage(m)->content, std::string(kMaxTextBytes, 'u'));
  EXPECT_EQ(store.GetMessage(m)->notice.size(), kMaxNoticeBytes);
}

TEST_F(StoreTest, BranchesSiblingsNewestLeafAndThread) {
  Store store(DbPath());
  const Id c = store.CreateConversation("tree", {});
  const Id system = store.AddMessage(c, 0, "system", "sys", MessageState::Complete);
  const Id u1 = store.AddMessage(c, system, "user", "u1", MessageState::Complete);
  const Id a1 = store.AddMessage(c, u1, "assistant", "a1", MessageState::Complete);
  const Id u2 = store.AddMessage(c, a1, "user", "u2", MessageState::Complete);
  const Id a2 = store.AddMessage(c, u2, "assistant", "a2", MessageState::Complete);
  const Id a1_regenerated = store.AddMessage(c, u1, "assistant", "a1'", MessageState::Complete);  // a sibling of a1
  const Id u1_edited = store.AddMessage(c, system, "user", "u1 edited", MessageState::Complete);

  std::vector<Message> siblings = store.Siblings(c, u1);
  ASSERT_EQ(siblings.size(), 2u);
  EXPECT_EQ(siblings[0].id, a1);
  EXPECT_EQ(siblings[1].id, a1_regenerated);
  siblings = store.Siblings(c, system);
  ASSERT_EQ(siblings.size(), 2u);
  EXPECT_EQ(siblings[1].id, u1_edited);
  ASSERT_EQ(store.Siblings(c, 0).size(), 1u);
  EXPECT_EQ(store.Siblings(c, 0)[0].id, system);

  EXPECT_EQ(store.NewestLeafUnder(u1), a1_regenerated);
  EXPECT_EQ(store.NewestLeafUnder(a1), a2);
  EXPECT_EQ(store.NewestLeafUnder(system), u1_edited);
  EXPECT_EQ(store.NewestLeafUnder(a2), a2);
  EXPECT_EQ(store.NewestLeafUnder(99999), 0);

  std::vector<Message> thread = store.Thread(a2);
  std::vector<Id> ids;
  for (const Message& m : thread) ids.push_back(m.id);
  EXPECT_EQ(ids, (std::vector<Id>{system, u1, a1, u2, a2}));
  EXPECT_TRUE(store.Thread(0).empty());

  EXPECT_EQ(store.GetConversation(c)->current_leaf, u1_edited);
  store.SetCurrentLeaf(c, a2);
  EXPECT_EQ(store.GetConversation(c)->current_leaf, a2);
  EXPECT_EQ(store.AllMessages(c).size(), 7u);
}

TEST_F(StoreTest, TransactionRollsBackWhenItThrowsAndNests) {
  Store store(DbPath());
  EXPECT_THROW(store.Transaction([&] {
    store.CreateConversation("never", {});
    throw std::runtime_error("stop");
  }),
               std::runtime_error);
  EXPECT_TRUE(store.ListConversations().empty());

  store.Transaction([&] {
    store.CreateConversation("outer", {});
    EXPECT_THROW(store.Transaction([&] {
      store.CreateConversation("inner", {});
      throw std::runtime_error("inner only");
    }),
                 std::runtime_error);
  });
  ASSERT_EQ(store.ListConversations().size(), 1u);
  EXPECT_EQ(store.ListConversations()[0].title, "outer");
}

// --- settings -----------------------------------------------------------------------------------
TEST_F(StoreTest, AppSettingsRoundTrip) {
  {
    Store store(DbPath());
    EXPECT_FALSE(store.GetSetting("model.path"));
    store.SetSetting("model.path", "/models/qwen");
    store.SetSetting("model.path", "/models/qwen2 ünïcode");
    store.SetSetting("empty", "");
  }
  Store store(DbPath());
  EXPECT_EQ(store.GetSetting("model.path"), "/models/qwen2 ünïcode");
  EXPECT_EQ(store.GetSetting("empty"), "");
}

// --- search -------------------------------------------------------------------------------------
TEST_F(StoreTest, SearchFindsTitlesAndMessagesByPrefix) {
  Store store(DbPath());
  const Id rust = store.CreateConversation("Rust lifetimes", {});
  const Id cooking = store.CreateConversation("Cooking", {});
  const Id m = store.AddMessage(cooking, 0, "user", "How long should I boil pasta al dente?", MessageState::Complete);
  store.AddMessage(rust, 0, "user", "Explain the borrow checker", MessageState::Complete);

  std::vector<SearchHit> hits = store.Search("lifet");
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].conversation_id, rust);
  EXPECT_EQ(hits[0].message_id, 0);
  EXPECT_EQ(hits[0].snippet, "Rust \x02lifetimes\x03");

  hits = store.Search("BOIL pas");  // every word, each a prefix, any case
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].conversation_id, cooking);
  EXPECT_EQ(hits[0].message_id, m);
  EXPECT_EQ(hits[0].title, "Cooking");
  ExpectMentions(hits[0].snippet,
                 {std::string(1, kMatchStart) + "boil" + kMatchEnd, std::string(1, kMatchStart) + "pasta" + kMatchEnd});
  EXPECT_TRUE(store.Search("boil rust").empty());
  EXPECT_EQ(store.Search("boil", 0).size(), 0u);
}

// Matches are marked with control characters: the user's own brackets stay text.
TEST_F(StoreTest, SearchMarksMatchesApartFromTheText) {
  Store store(DbPath());
  const Id c = store.CreateConversation("Arrays", {});
  store.AddMessage(c, 0, "user", "Is [index] or [key] the usual word?", MessageState::Complete);
  const std::vector<SearchHit> hits = store.Search("index");
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].snippet, std::string("Is [") + kMatchStart + "index" + kMatchEnd + "] or [key] the usual word?");
}

// Many matching messages in one conversation: the conversation is listed once, with its best hit.
TEST_F(StoreTest, SearchListsEachConversationOnce) {
  Store store(DbPath());
  const Id chatty = store.CreateConversation("Walks", {});
  Id leaf = 0;
  for (int i = 0; i < 5; ++i) {
    leaf = store.AddMessage(chatty, leaf, i % 2 == 0 ? "user" : "assistant", "otter number " + std::to_string(i),
                            MessageState::Complete);
  }
  const Id best = store.AddMessage(chatty, leaf, "user", "otter otter otter", MessageState::Complete);
  const Id other = store.CreateConversation("Rivers", {});
  store.AddMessage(other, 0, "user", "an otter swam by", MessageState::Complete);
  const Id titled = store.CreateConversation("Otter facts", {});
  store.AddMessage(titled, 0, "user", "otters hold hands", MessageState::Complete);

  const std::vector<SearchHit> hits = store.Search("otter");
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_EQ(hits[0].conversation_id, titled);  // a title hit first
  EXPECT_EQ(hits[0].message_id, 0);
  EXPECT_EQ(hits[1].conversation_id, chatty);  // bm25: the densest message ranks best
  EXPECT_EQ(hits[1].message_id, best);
  EXPECT_EQ(hits[2].conversation_id, other);
  EXPECT_EQ(store.Search("otter", 2).size(), 2u);  // the limit counts conversations
}

TEST_F(StoreTest, SearchTreatsEveryInputAsWords) {
  Store store(DbPath());
  const Id c = store.CreateConversation("quotes", {});
  store.AddMessage(c, 0, "user", "He said \"don't\" AND left: c++ NEAR the end-of-line (really)",
                   MessageState::Complete);
  for (const char* query :
       {"\"", "\"\"", "'",       "AND",     "OR",  "NOT",         "NEAR(", "*",  "-", "^",    ":", "(",
        ")",  "{}",   "col:umn", "\"don't", "c++", "end-of-line", "—",     "  ", "",  "a\"b", "✓✓"}) {
    EXPECT_NO_THROW(store.Search(query)) << query;
  }
  EXPECT_EQ(store.Search("\"don't\"").size(), 1u);
  EXPECT_EQ(store.Search("AND").size(), 1u);  // an ordinary word here, not an operator
  EXPECT_EQ(store.Search("end-of-line").size(), 1u);
  EXPECT_EQ(store.Search("(really) —").size(), 1u);  // a word without letters does not spoil the rest
  EXPECT_TRUE(store.Search("").empty());
  EXPECT_TRUE(store.Search("*").empty());
}

TEST_F(StoreTest, SearchFollowsUpdatesAndExcludesDeleted) {
  Store store(DbPath());
  const Id c = store.CreateConversation("notes", {});
  const Id m = store.AddMessage(c, 0, "assistant", "", MessageState::Streaming);
  store.UpdateMessage(m, "partial aardvark", MessageState::Streaming);
  store.UpdateMessage(m, "complete wombat", MessageState::Complete);
  EXPECT_TRUE(store.Search("aardvark").empty());
  ASSERT_EQ(store.Search("wombat").size(), 1u);
  store.RenameConversation(c, "platypus");
  EXPECT_TRUE(store.Search("notes").empty());
  EXPECT_EQ(store.Search("platypus").size(), 1u);
  store.DeleteConversation(c);
  EXPECT_TRUE(store.Search("wombat").empty());
  EXPECT_TRUE(store.Search("platypus").empty());
}

// A megabyte of one repeated word: FTS5's snippet() costs the square of a text's matches (it
// never finished); the store's snippet is cut from one linear pass, to a few words around the
// first match, however long the text or its words.
TEST_F(StoreTest, SearchInAHugeMessageGivesAShortSnippet) {
  Store store(DbPath());
  const Id c = store.CreateConversation("Huge", {});
  std::string text = "start ";
  for (int i = 0; i < 200'000; ++i) text += "word ";
  text += "needle " + std::string(100'000, 'x');
  const Id m = store.AddMessage(c, 0, "user", text, MessageState::Complete);
  for (const char* query : {"word", "needle", "start", "xxx"}) {
    const std::vector<SearchHit> hits = store.Search(query);
    ASSERT_EQ(hits.size(), 1u) << query;
    EXPECT_EQ(hits[0].message_id, m);
    EXPECT_LT(hits[0].snippet.size(), 400u) << query;
    EXPECT_NE(hits[0].snippet.find(kMatchStart), std::string::npos) << query;
  }
  const std::string needle = store.Search("needle")[0].snippet;
  ExpectMentions(needle, {"…word word", std::string(1, kMatchStart) + "needle" + kMatchEnd, "…"});
  EXPECT_EQ(store.Search("start")[0].snippet.substr(0, 8), std::string(1, kMatchStart) + "start" + kMatchEnd + " ");
}

TEST_F(StoreTest, SearchGivesUpWhenAsked) {
  Store store(DbPath());
  for (const char* title : {"otter one", "otter two", "otter three"}) store.CreateConversation(title, {});
  int asked = 0;
  const std::vector<SearchHit> hits = store.Search("otter", 50, [&] { return ++asked > 1; });
  EXPECT_EQ(hits.size(), 1u);  // the snippets after the first were not made
  EXPECT_EQ(store.Search("otter", 50, [] { return false; }).size(), 3u);
}

TEST_F(StoreTest, MessageLinksGiveTheWholeTreeInOneQuery) {
  Store store(DbPath());
  const Id c = store.CreateConversation("tree", {});
  const Id root = store.AddMessage(c, 0, "user", "q", MessageState::Complete);
  const Id first = store.AddMessage(c, root, "assistant", "a1", MessageState::Complete);
  const Id second = store.AddMessage(c, root, "assistant", "a2", MessageState::Complete);
  const Id other = store.CreateConversation("other", {});
  store.AddMessage(other, 0, "user", "elsewhere", MessageState::Complete);
  const uint64_t before = store.statements_run();
  const std::vector<MessageLink> links = store.MessageLinks(c);
  EXPECT_EQ(store.statements_run(), before + 1);
  ASSERT_EQ(links.size(), 3u);
  EXPECT_EQ(links[0].id, root);
  EXPECT_EQ(links[0].parent_id, 0);
  EXPECT_EQ(links[1].id, first);
  EXPECT_EQ(links[1].parent_id, root);
  EXPECT_EQ(links[2].id, second);
  EXPECT_EQ(links[2].parent_id, root);
}

TEST_F(StoreTest, AConversationKeepsItsEngine) {
  Store store(DbPath());
  const Id c = store.CreateConversation("remote", {});
  EXPECT_FALSE(store.GetConversation(c)->engine.remote());
  const ConversationEngine engine{.base_url = "http://gpu-box:8000/v1", .model = "Qwen/Qwen2.5-72B-Instruct"};
  store.SetConversationEngine(c, engine);
  EXPECT_EQ(store.GetConversation(c)->engine, engine);
  EXPECT_EQ(store.ListConversations().at(0).engine, engine);
  store.SetConversationEngine(c, {});
  EXPECT_FALSE(store.GetConversation(c)->engine.remote());
  EXPECT_THROW(store.SetConversationEngine(c + 1, engine), Error);
}

TEST_F(StoreTest, AConversationKeepsItsThinkingSwitch) {
  Store store(DbPath());
  const Id c = store.CreateConversation("qwen3", {});
  EXPECT_EQ(store.GetConversation(c)->enable_thinking, std::nullopt);  // the template's default
  store.SetConversationThinking(c, false);
  EXPECT_EQ(store.GetConversation(c)->enable_thinking, false);
  EXPECT_EQ(store.ListConversations().at(0).enable_thinking, false);
  store.SetConversationThinking(c, true);
  EXPECT_EQ(Store(DbPath()).GetConversation(c)->enable_thinking, true);
  store.SetConversationThinking(c, std::nullopt);
  EXPECT_EQ(store.GetConversation(c)->enable_thinking, std::nullopt);
  EXPECT_THROW(store.SetConversationThinking(c + 1, false), Error);
}

TEST_F(StoreTest, DeletedSettingsAreGone) {
  Store store(DbPath());
  store.SetSetting("model.loading", "/models/x");
  store.DeleteSetting("model.loading");
  store.DeleteSetting("never.set");
  EXPECT_FALSE(store.GetSetting("model.loading"));
}

// --- schema and migration -----------------------------------------------------------------------
TEST_F(StoreTest, MigratesAVersion1Database) {
  const auto path = dir_.path() / "v1.db";
  {
    RawDatabase v1(path);
    v1.Execute(sql::kMigrations[0]);
    v1.Execute(
        "INSERT INTO conversations (id, title, created_ms, updated_ms, current_leaf, settings)"
        " VALUES (1, 'Old chat about octopus', 1000, 2000, 2, '{\"temperature\": 0.3}');"
        "INSERT INTO messages (id, conversation_id, parent_id, role, content, state, created_ms)"
        " VALUES (1, 1, NULL, 'user', 'tell me about squid', 'complete', 1000),"
        "        (2, 1, 1, 'assistant', 'Squid have three hearts', 'streaming', 1500);"
        "INSERT INTO settings (key, value) VALUES ('theme', 'dark');"
        "PRAGMA user_version = 1;");
  }
  Store store(path);
  EXPECT_EQ(store.schema_version(), Store::kSchemaVersion);
  std::optional<Conversation> c = store.GetConversation(1);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->title, "Old chat about octopus");
  EXPECT_EQ(c->settings.temperature, 0.3f);
  EXPECT_EQ(c->settings.top_k, ConversationSettings{}.top_k);
  EXPECT_FALSE(c->pinned);
  EXPECT_FALSE(c->engine.remote());  // conversations from before remote engines ran on this computer
  EXPECT_EQ(c->updated_ms, 2000);
  std::vector<Message> thread = store.Thread(c->current_leaf);
  ASSERT_EQ(thread.size(), 2u);
  EXPECT_EQ(thread[1].content, "Squid have three hearts");
  EXPECT_EQ(thread[1].state, MessageState::Interrupted);
  EXPECT_EQ(thread[1].tokens, 0u);
  EXPECT_EQ(store.GetSetting("theme"), "dark");
  ASSERT_EQ(store.Search("hearts").size(), 1u);
  EXPECT_EQ(store.Search("hearts")[0].message_id, 2);
  ASSERT_EQ(store.Search("octo").size(), 1u);
  EXPECT_EQ(store.Search("octo")[0].message_id, 0);
  EXPECT_EQ(store.IntegrityCheck(), "ok");
}

// The version before the thinking switch: its conversations keep everything and leave the
// switch to the template, and the column takes only 0, 1 or NULL.
TEST_F(StoreTest, MigratesAVersion4Database) {
  const auto path = dir_.path() / "v4.db";
  {
    RawDatabase v4(path);
    for (size_t step = 0; step < 4; ++step) v4.Execute(sql::kMigrations[step]);
    v4.Execute(
        "INSERT INTO conversations (id, title, created_ms, updated_ms, current_leaf, settings, engine_url, "
        "engine_model, pinned) VALUES (1, 'Remote chat', 1000, 2000, 2, '{\"top_k\": 7}', 'http://box:8000/v1', "
        "'Qwen3-8B', 1);"
        "INSERT INTO messages (id, conversation_id, parent_id, role, content, state, created_ms, tokens)"
        " VALUES (1, 1, NULL, 'user', 'why is the sky blue', 'complete', 1000, 0),"
        "        (2, 1, 1, 'assistant', '<think>\nRayleigh.\n</think>\n\nScattering.', 'complete', 1500, 9);");
  }
  Store store(path);
  EXPECT_EQ(store.schema_version(), Store::kSchemaVersion);
  const std::optional<Conversation> c = store.GetConversation(1);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->enable_thinking, std::nullopt);
  EXPECT_EQ(c->title, "Remote chat");
  EXPECT_TRUE(c->pinned);
  EXPECT_EQ(c->settings.top_k, 7u);
  EXPECT_EQ(c->engine, (ConversationEngine{.base_url = "http://box:8000/v1", .model = "Qwen3-8B"}));
  const std::vector<Message> thread = store.Thread(c->current_leaf);
  ASSERT_EQ(thread.size(), 2u);
  EXPECT_EQ(thread[1].content, "<think>\nRayleigh.\n</think>\n\nScattering.");
  EXPECT_EQ(thread[1].tokens, 9u);
  store.SetConversationThinking(1, false);
  EXPECT_EQ(store.GetConversation(1)->enable_thinking, false);
  EXPECT_EQ(store.IntegrityCheck(), "ok");
  RawDatabase raw(path);
  EXPECT_EQ(raw.ExecuteCode("UPDATE conversations SET enable_thinking = 2 WHERE id = 1"), SQLITE_CONSTRAINT);
  EXPECT_EQ(raw.Scalar("SELECT enable_thinking FROM conversations WHERE id = 1"), 0);
}

TEST_F(StoreTest, RefusesANewerSchema) {
  const auto path = dir_.path() / "newer.db";
  {
    RawDatabase newer(path);
    newer.Execute(fmt::format("CREATE TABLE future (x); PRAGMA user_version = {};", Store::kSchemaVersion + 1));
  }
  const std::string bytes = test::ReadFile(path);
  EXPECT_EQ(KindOf([&] { Store store(path); }), StoreErrorKind::NewerSchema);
  ExpectMentions(ErrorOf([&] { Store store(path); }),
                 {path.string(), "newer QwenVK", fmt::format("version {}", Store::kSchemaVersion + 1)});
  EXPECT_EQ(test::ReadFile(path), bytes);
}

// --- damaged, newer, read-only and locked files ---------------------------------------------
TEST_F(StoreTest, GarbageFileIsCorruptAndLeftUntouched) {
  std::string garbage;
  for (int i = 0; i < 400; ++i) garbage += "not a database ";
  const auto path = dir_.Write("conversations.db", garbage);
  EXPECT_EQ(KindOf([&] { Store store(path); }), StoreErrorKind::Corrupt);
  EXPECT_EQ(KindOf([&] { Store store(path, {.read_only = true}); }), StoreErrorKind::Corrupt);
  ExpectMentions(ErrorOf([&] { Store store(path); }),
                 {path.string(), "damaged", "read-only", "backup", "move it away"});
  EXPECT_EQ(test::ReadFile(path), garbage);
}

// Parents that loop pass both integrity_check and foreign_key_check; every walk along them stops
// and names the damage instead of running on.
TEST_F(StoreTest, ParentsThatLoopAreReportedAsDamage) {
  Id c = 0, root = 0, reply = 0, question = 0, healthy = 0, healthy_leaf = 0;
  {
    Store store(DbPath());
    c = store.CreateConversation("looped", {});
    root = store.AddMessage(c, 0, "system", "sys", MessageState::Complete);
    // Long text: a walk that copied every row it met would be slow as well as endless.
    reply = store.AddMessage(c, root, "assistant", std::string(size_t{1} << 20, 'r'), MessageState::Complete);
    question = store.AddMessage(c, reply, "user", "q", MessageState::Complete);
    healthy = store.CreateConversation("healthy", {});
    healthy_leaf = store.AddMessage(healthy, 0, "user", "fine", MessageState::Complete);
  }
  {
    RawDatabase raw(DbPath());
    raw.Execute(fmt::format("UPDATE messages SET parent_id = {} WHERE id = {}", question, reply));
    EXPECT_EQ(raw.Scalar("SELECT count(*) FROM pragma_foreign_key_check"), 0);
  }
  Store store(DbPath());
  EXPECT_EQ(store.IntegrityCheck(), "ok");
  for (const Id start : {reply, question}) {
    SCOPED_TRACE(start);
    EXPECT_EQ(KindOf([&] { store.Thread(start); }), StoreErrorKind::Corrupt);
    ExpectMentions(
        ErrorOf([&] { store.Thread(start); }),
        {fmt::format("Conversation {} in {} is damaged: message {} is its own ancestor", c, DbPath().string(), start),
         "read-only", "backup"});
    EXPECT_EQ(KindOf([&] { store.NewestLeafUnder(start); }), StoreErrorKind::Corrupt);
    ExpectMentions(ErrorOf([&] { store.NewestLeafUnder(start); }), {"is its own ancestor"});
  }
  EXPECT_EQ(store.Thread(root).size(), 1u);  // above the loop
  EXPECT_EQ(store.NewestLeafUnder(root), root);
  EXPECT_EQ(store.Thread(healthy_leaf).size(), 1u);

  {
    RawDatabase raw(DbPath());
    raw.Execute(fmt::format("UPDATE messages SET parent_id = id WHERE id = {}", root));
  }
  ExpectMentions(ErrorOf([&] { store.Thread(root); }), {fmt::format("message {} is its own ancestor", root)});
  ExpectMentions(ErrorOf([&] { store.NewestLeafUnder(root); }), {fmt::format("message {} is its own ancestor", root)});
  // The way out the message names.
  store.DeleteConversation(c);
  store.PurgeDeleted();
  EXPECT_EQ(store.IntegrityCheck(), "ok");
  EXPECT_FALSE(store.GetMessage(reply));
}

// The walks stop at the longest thread an import accepts: that one reads whole, one more is
// damage; either can be deleted for good.
TEST_F(StoreTest, ThreadsAsLongAsAnImportReadAndPurge) {
  Id c = 0;
  {
    Store store(DbPath());
    c = store.CreateConversation("long", {});
  }
  {
    RawDatabase raw(DbPath());
    raw.Execute(
        fmt::format("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})"
                    " INSERT INTO messages (id, conversation_id, parent_id, role, content, state, created_ms)"
                    " SELECT i, {}, nullif(i - 1, 0), 'user', 'turn', 'complete', 0 FROM n",
                    kMaxImportMessages, c));
  }
  Store store(DbPath());
  const auto last = static_cast<Id>(kMaxImportMessages);
  const std::vector<Message> thread = store.Thread(last);
  ASSERT_EQ(thread.size(), kMaxImportMessages);
  EXPECT_EQ(thread.front().id, 1);
  EXPECT_EQ(thread.back().id, last);
  EXPECT_EQ(store.NewestLeafUnder(1), last);

  const Id beyond = store.AddMessage(c, last, "assistant", "one too many", MessageState::Complete);
  ExpectMentions(ErrorOf([&] { store.Thread(beyond); }),
                 {fmt::format("Conversation {}", c), "is damaged", "longer than any conversation"});
  ExpectMentions(ErrorOf([&] { store.NewestLeafUnder(1); }), {"is damaged", "longer than any conversation"});

  store.DeleteConversation(c);
  store.PurgeDeleted();
  EXPECT_FALSE(store.GetMessage(1));
  EXPECT_FALSE(store.GetMessage(beyond));
  EXPECT_EQ(store.IntegrityCheck(), "ok");
}

TEST_F(StoreTest, ReadOnlyReadsButRefusesWrites) {
  Id c = 0;
  {
    Store store(DbPath());
    c = store.CreateConversation("look only", {});
    store.AddMessage(c, 0, "user", "hello there", MessageState::Complete);
  }
  Store store(DbPath(), {.read_only = true});
  EXPECT_TRUE(store.read_only());
  ASSERT_EQ(store.ListConversations().size(), 1u);
  EXPECT_EQ(store.Thread(store.GetConversation(c)->current_leaf).size(), 1u);
  EXPECT_EQ(store.Search("hello").size(), 1u);
  Store backup_source(DbPath(), {.read_only = true});
  backup_source.Backup(dir_.path() / "copy.db");

  const uint64_t revision = store.revision();
  EXPECT_EQ(KindOf([&] { store.CreateConversation("x", {}); }), StoreErrorKind::ReadOnly);
  EXPECT_EQ(KindOf([&] { store.AddMessage(c, 0, "user", "x", MessageState::Complete); }), StoreErrorKind::ReadOnly);
  EXPECT_EQ(KindOf([&] { store.SetSetting("k", "v"); }), StoreErrorKind::ReadOnly);
  ExpectMentions(ErrorOf([&] { store.RenameConversation(c, "x"); }), {"read-only", DbPath().string()});
  EXPECT_EQ(store.revision(), revision);
  EXPECT_EQ(store.GetConversation(c)->title, "look only");

  EXPECT_EQ(KindOf([&] { Store missing(dir_.path() / "missing.db", {.read_only = true}); }), StoreErrorKind::Io);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "missing.db"));
}

TEST_F(StoreTest, LockedDatabaseFailsWritesAndLosesNothing) {
  Store store(DbPath());
  const Id c = store.CreateConversation("busy", {});
  const Id first = store.AddMessage(c, 0, "user", "before the lock", MessageState::Complete);
  {
    RawDatabase other(DbPath());
    other.Execute("BEGIN EXCLUSIVE");
    EXPECT_EQ(KindOf([&] { store.AddMessage(c, first, "assistant", "lost?", MessageState::Complete); }),
              StoreErrorKind::Locked);
    ExpectMentions(ErrorOf([&] { store.SetSetting("k", "v"); }), {"another QwenVK", DbPath().string(), "read-only"});
    EXPECT_EQ(store.Thread(first).size(), 1u);  // WAL: reading goes on
    Store second(DbPath());                     // opening needs no write lock
    EXPECT_EQ(second.ListConversations().size(), 1u);
    other.Execute("ROLLBACK");
  }
  EXPECT_EQ(store.AllMessages(c).size(), 1u);
  EXPECT_EQ(store.GetConversation(c)->current_leaf, first);
  const Id after = store.AddMessage(c, first, "assistant", "after the lock", MessageState::Complete);
  EXPECT_EQ(store.Thread(after).size(), 2u);
}

TEST_F(StoreTest, OneSingleWriterAtATimeOthersReadOnly) {
  const Store::Options writer{.read_only = false, .single_writer = true};
  {
    Store app(DbPath(), writer);
    app.CreateConversation("mine", {});
    EXPECT_EQ(KindOf([&] { Store second_app(DbPath(), writer); }), StoreErrorKind::Locked);
    ExpectMentions(ErrorOf([&] { Store second_app(DbPath(), writer); }), {"Another QwenVK", DbPath().string()});
    Store viewer(DbPath(), Store::Options{.read_only = true, .single_writer = true});
    EXPECT_EQ(viewer.ListConversations().size(), 1u);
  }
  Store next_start(DbPath(), writer);  // the lock went with the first store
  EXPECT_EQ(next_start.ListConversations().size(), 1u);
}

// A symlink to the database, or to its folder, is the same database: a second QwenVK through it
// must not open it for writing (it would purge the first one's undo).
TEST_F(StoreTest, SingleWriterLockFollowsSymlinks) {
  const Store::Options writer{.read_only = false, .single_writer = true};
  std::filesystem::create_directories(DbPath().parent_path());
  const auto file_link = dir_.path() / "link.db";
  const auto folder_link = dir_.path() / "linked-folder";
  std::filesystem::create_symlink(DbPath(), file_link);
  std::filesystem::create_directory_symlink(DbPath().parent_path(), folder_link);
  const auto through_folder = folder_link / DbPath().filename();
  {
    Store app(DbPath(), writer);
    const Id undoable = app.CreateConversation("deleted, can still be undone", {});
    app.DeleteConversation(undoable);
    for (const auto& other : {file_link, through_folder}) {
      SCOPED_TRACE(other);
      EXPECT_EQ(KindOf([&] { Store second_app(other, writer); }), StoreErrorKind::Locked);
      ExpectMentions(ErrorOf([&] { Store second_app(other, writer); }), {"Another QwenVK", other.string()});
    }
    app.RestoreConversation(undoable);
    EXPECT_EQ(app.ListConversations().size(), 1u);
  }
  Store through_link(file_link, writer);  // the lock went with the first store
  EXPECT_EQ(KindOf([&] { Store second_app(DbPath(), writer); }), StoreErrorKind::Locked);
  EXPECT_EQ(through_link.ListConversations().size(), 1u);
}

// --- durability and concurrency -------------------------------------------------------------
TEST_F(StoreTest, ProcessKilledMidReplyLeavesAnInterruptedMessage) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    Store store(DbPath());
    const Id c = store.CreateConversation("crash", {});
    const Id user = store.AddMessage(c, 0, "user", "write a poem", MessageState::Complete);
    const Id reply = store.AddMessage(c, user, "assistant", "Roses", MessageState::Streaming);
    store.UpdateMessage(reply, "Roses are red,", MessageState::Streaming);
    kill(getpid(), SIGKILL);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));

  Store store(DbPath());
  ASSERT_EQ(store.ListConversations().size(), 1u);
  const std::vector<Message> thread = store.Thread(store.ListConversations()[0].current_leaf);
  ASSERT_EQ(thread.size(), 2u);
  EXPECT_EQ(thread[1].content, "Roses are red,");
  EXPECT_EQ(thread[1].state, MessageState::Interrupted);
  EXPECT_EQ(thread[0].state, MessageState::Complete);
}

TEST_F(StoreTest, ReaderSeesConsistentStatesDuringWrites) {
  constexpr int kReplies = 150;
  Store writer(DbPath());
  Store reader(DbPath());
  const Id c = writer.CreateConversation("concurrent", {});
  std::atomic<bool> done = false;

  std::thread writing([&] {
    Id parent = 0;
    for (int i = 0; i < kReplies; ++i) {
      const Id id = writer.AddMessage(c, parent, i % 2 ? "assistant" : "user", "token", MessageState::Streaming);
      writer.UpdateMessage(id, "token token", MessageState::Streaming);
      writer.UpdateMessage(id, "token token final" + std::to_string(i), MessageState::Complete);
      parent = id;
    }
    done = true;
  });
  // Every view the reader gets is a chain from the root to the conversation's leaf, in which
  // every message but the leaf is finished; and every search hit names a message that exists.
  const auto check = [&]() -> size_t {
    const std::optional<Conversation> conversation = reader.GetConversation(c);
    EXPECT_TRUE(conversation);
    if (!conversation) return 0;
    const std::vector<Message> thread = reader.Thread(conversation->current_leaf);
    EXPECT_EQ(thread.empty(), conversation->current_leaf == 0);
    for (size_t i = 0; i < thread.size(); ++i) {
      EXPECT_EQ(thread[i].parent_id, i == 0 ? 0 : thread[i - 1].id);
      if (i + 1 < thread.size()) {
        EXPECT_EQ(thread[i].state, MessageState::Complete);
        EXPECT_EQ(thread[i].content, "token token final" + std::to_string(i));
      }
    }
    if (!thread.empty()) {
      EXPECT_EQ(thread.back().id, conversation->current_leaf);
    }
    for (const SearchHit& hit : reader.Search("tok", 20)) EXPECT_TRUE(reader.GetMessage(hit.message_id));
    return thread.size();
  };
  std::thread reading([&] {
    while (!done) check();
  });
  writing.join();
  reading.join();
  EXPECT_EQ(check(), size_t{kReplies});
}

// --- backup and paths -----------------------------------------------------------------------
TEST_F(StoreTest, BackupOpensWithTheSameContent) {
  const auto copy_path = dir_.path() / "backup.db";
  Store store(DbPath());
  const Id c = store.CreateConversation("keep me", {});
  const Id m = store.AddMessage(c, 0, "user", "backed up text", MessageState::Complete);
  store.SetSetting("k", "v");
  store.Backup(copy_path);

  Store copy(copy_path);
  EXPECT_EQ(copy.IntegrityCheck(), "ok");
  EXPECT_EQ(copy.schema_version(), Store::kSchemaVersion);
  ASSERT_EQ(copy.ListConversations().size(), 1u);
  EXPECT_EQ(copy.ListConversations()[0].title, "keep me");
  EXPECT_EQ(copy.GetMessage(m)->content, "backed up text");
  EXPECT_EQ(copy.GetSetting("k"), "v");
  EXPECT_EQ(copy.Search("backed").size(), 1u);

  EXPECT_EQ(KindOf([&] { store.Backup(dir_.path() / "no" / "such" / "folder.db"); }), StoreErrorKind::Io);
}

TEST(StorePathTest, DefaultPathFollowsXdgDataHome) {
  const char* xdg = std::getenv("XDG_DATA_HOME");
  const std::string saved_xdg = xdg != nullptr ? xdg : "";
  const std::string home = std::getenv("HOME") != nullptr ? std::getenv("HOME") : "/nonexistent";
  setenv("HOME", home.c_str(), 1);
  setenv("XDG_DATA_HOME", "/data/home", 1);
  EXPECT_EQ(Store::DefaultPath(), std::filesystem::path("/data/home/qwenvk/conversations.db"));
  setenv("XDG_DATA_HOME", "relative/ignored", 1);
  EXPECT_EQ(Store::DefaultPath(), std::filesystem::path(home) / ".local/share/qwenvk/conversations.db");
  unsetenv("XDG_DATA_HOME");
  EXPECT_EQ(Store::DefaultPath(), std::filesystem::path(home) / ".local/share/qwenvk/conversations.db");
  if (xdg != nullptr) setenv("XDG_DATA_HOME", saved_xdg.c_str(), 1);
}

}  // namespace
}  // namespace qvk::store
