// Sections: a sample conversation / Markdown / JSON export and import round trip / import checks
#include "store/exchange.h"

#include <map>
#include <tuple>

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace qvk::store {
namespace {

using Json = nlohmann::ordered_json;
using test::ExpectMentions;

struct Sample {
  Id conversation = 0;
  Id leaf = 0;
};

// A tree with a regenerated reply (a branch off the current one), fenced code, an interrupted
// reply cut off inside a code block, and reply figures.
Sample MakeSample(Store& store) {
  ConversationSettings settings;
  settings.system_prompt = "Be brief.";
  settings.temperature = 0.5f;
  settings.seed = 1234;
  settings.random_seed = false;
  Sample sample;
  sample.conversation = store.CreateConversation("Code help", settings);
  const Id ask = store.AddMessage(sample.conversation, 0, "user", "Show code", MessageState::Complete);
  store.AddMessage(sample.conversation, ask, "assistant", "other branch", MessageState::Complete);
  const Id answer =
      store.AddMessage(sample.conversation, ask, "assistant",
                       "Here:\n```python\nprint('hi')\n\n### not a heading\n```\nDone.", MessageState::Complete);
  store.SetMessageStats(answer, 17, 33.5, 0.25, "dropped 1 old turn");
  const Id more = store.AddMessage(sample.conversation, answer, "user", "More", MessageState::Complete);
  sample.leaf = store.AddMessage(sample.conversation, more, "assistant", "```cpp\nint x", MessageState::Interrupted);
  store.SetPinned(sample.conversation, true);
  return sample;
}

// A conversation as the ids-free shape the round trip must keep: each message with the index of
// its parent.
using MessageShape =
    std::tuple<int, std::string, std::string, MessageState, int64_t, uint32_t, double, double, std::string>;
struct Shape {
  std::string title;
  bool pinned = false;
  int64_t created_ms = 0, updated_ms = 0;
  ConversationSettings settings;
  int current_leaf = -1;
  std::vector<MessageShape> messages;
  bool operator==(const Shape&) const = default;
};

Shape ShapeOf(Store& store, Id conversation_id) {
  const Conversation conversation = *store.GetConversation(conversation_id);
  Shape shape{conversation.title, conversation.pinned, conversation.created_ms, conversation.updated_ms,
              conversation.settings};
  std::map<Id, int> index;
  for (const Message& m : store.AllMessages(conversation_id)) {
    const int parent = m.parent_id == 0 ? -1 : index.at(m.parent_id);
    index[m.id] = static_cast<int>(shape.messages.size());
    shape.messages.emplace_back(parent, m.role, m.content, m.state, m.created_ms, m.tokens, m.tokens_per_s,
                                m.time_to_first_token_s, m.notice);
  }
  shape.current_leaf = index.at(conversation.current_leaf);
  return shape;
}

class ExchangeTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
  Store store_{dir_.path() / "conversations.db"};
};

// --- Markdown -----------------------------------------------------------------------------------
TEST_F(ExchangeTest, MarkdownHasTheCurrentBranchVerbatim) {
  const Sample sample = MakeSample(store_);
  EXPECT_EQ(ExportMarkdown(store_, sample.conversation),
            "# Code help\n"
            "\n## System prompt\n\nBe brief.\n"
            "\n### User\n\nShow code\n"
            "\n### Assistant\n\nHere:\n```python\nprint('hi')\n\n### not a heading\n```\nDone.\n"
            "\n### User\n\nMore\n"
            "\n### Assistant\n\n```cpp\nint x\n```\n"
            "\n*(reply interrupted)*\n");
  ExpectMentions(test::ErrorOf([&] { ExportMarkdown(store_, 999); }), {"999", "does not exist"});
}

// --- JSON export and import round trip ------------------------------------------------------
TEST_F(ExchangeTest, JsonHoldsTheWholeTree) {
  const Sample sample = MakeSample(store_);
  const Json json = Json::parse(ExportJson(store_, sample.conversation));
  EXPECT_EQ(json["format"], "qwenvk-conversation");
  EXPECT_EQ(json["version"], 2);
  EXPECT_TRUE(json["enable_thinking"].is_null());  // the template's default
  EXPECT_EQ(json["title"], "Code help");
  EXPECT_EQ(json["pinned"], true);
  EXPECT_EQ(json["settings"]["system_prompt"], "Be brief.");
  EXPECT_EQ(json["settings"]["seed"], 1234);
  EXPECT_EQ(json["settings"]["top_p"], 0.8);  // the float's shortest decimal, not 0.800000011920929
  EXPECT_EQ(json["current_leaf"], sample.leaf);
  ASSERT_EQ(json["messages"].size(), 5u);
  EXPECT_TRUE(json["messages"][0]["parent"].is_null());
  EXPECT_EQ(json["messages"][1]["content"], "other branch");
  EXPECT_EQ(json["messages"][2]["tokens"], 17);
  EXPECT_EQ(json["messages"][2]["notice"], "dropped 1 old turn");
  EXPECT_EQ(json["messages"][4]["state"], "interrupted");
  ExpectMentions(test::ErrorOf([&] { ExportJson(store_, 999); }), {"999", "does not exist"});
}

TEST_F(ExchangeTest, ImportRebuildsTheSameTree) {
  const Sample sample = MakeSample(store_);
  const std::string exported = ExportJson(store_, sample.conversation);
  const Id imported = ImportJson(store_, exported);
  EXPECT_NE(imported, sample.conversation);
  EXPECT_EQ(ShapeOf(store_, imported), ShapeOf(store_, sample.conversation));
  EXPECT_EQ(ExportMarkdown(store_, imported), ExportMarkdown(store_, sample.conversation));
  EXPECT_EQ(store_.ListConversations().size(), 2u);

  // A second store, as on another machine.
  test::TempDir other_dir;
  Store other(other_dir.path() / "other.db");
  const Id copy = ImportJson(other, exported);
  EXPECT_EQ(ShapeOf(other, copy), ShapeOf(store_, sample.conversation));
  Json again = Json::parse(ExportJson(other, copy));
  EXPECT_EQ(again["messages"].size(), 5u);
}

// The store refuses one byte more than these (store_test), so nothing it holds is refused on import.
TEST_F(ExchangeTest, TheLargestTextsTheStoreHoldsRoundTrip) {
  std::string title(kMaxTitleBytes % 3, 't');  // bytes, not characters, are counted
  while (title.size() < kMaxTitleBytes) title += "✓";
  std::string text;
  while (text.size() < kMaxTextBytes) text += "word ";
  text.resize(kMaxTextBytes);
  ConversationSettings settings;
  settings.system_prompt = text;
  const Id conversation = store_.CreateConversation(title, settings);
  const Id message = store_.AddMessage(conversation, 0, "user", text, MessageState::Complete);
  store_.SetMessageStats(message, 1, 2, 3, std::string(kMaxNoticeBytes, 'n'));
  ASSERT_EQ(store_.GetConversation(conversation)->title.size(), kMaxTitleBytes);

  const Id imported = ImportJson(store_, ExportJson(store_, conversation));
  EXPECT_EQ(ShapeOf(store_, imported), ShapeOf(store_, conversation));
}

TEST_F(ExchangeTest, ImportOfAMinimalFile) {
  const Id id = ImportJson(store_, R"({"format": "qwenvk-conversation", "version": 1, "title": "t",
      "messages": [{"id": 10, "parent": null, "role": "user", "content": "hi"},
                   {"id": 20, "parent": 10, "role": "assistant", "content": "yo", "state": "streaming"}]})");
  const Conversation conversation = *store_.GetConversation(id);
  EXPECT_EQ(conversation.settings, ConversationSettings{});
  const std::vector<Message> thread = store_.Thread(conversation.current_leaf);
  ASSERT_EQ(thread.size(), 2u);
  EXPECT_EQ(thread[1].content, "yo");
  EXPECT_EQ(thread[1].state, MessageState::Interrupted);
}

// The thinking switch travels with the conversation; a version 1 file (before it) leaves it unset.
TEST_F(ExchangeTest, TheThinkingSwitchRoundTrips) {
  const Sample sample = MakeSample(store_);
  for (const bool enable_thinking : {false, true}) {
    store_.SetConversationThinking(sample.conversation, enable_thinking);
    const std::string exported = ExportJson(store_, sample.conversation);
    EXPECT_EQ(Json::parse(exported)["enable_thinking"], enable_thinking);
    EXPECT_EQ(store_.GetConversation(ImportJson(store_, exported))->enable_thinking, enable_thinking);
  }
  const Id old = ImportJson(store_, R"({"format": "qwenvk-conversation", "version": 1, "title": "t",
      "messages": [{"id": 1, "parent": null, "role": "user", "content": "hi"}]})");
  EXPECT_EQ(store_.GetConversation(old)->enable_thinking, std::nullopt);
  const Id unset = ImportJson(store_, R"({"format": "qwenvk-conversation", "version": 2, "title": "t",
      "enable_thinking": null, "messages": []})");
  EXPECT_EQ(store_.GetConversation(unset)->enable_thinking, std::nullopt);
}

TEST_F(ExchangeTest, ImportIntoAReadOnlyStoreIsRefused) {
  const std::string exported = ExportJson(store_, MakeSample(store_).conversation);
  Store read_only(store_.path(), {.read_only = true});
  try {
    ImportJson(read_only, exported);
    ADD_FAILURE() << "imported into a read-only store";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.kind(), StoreErrorKind::ReadOnly);
  }
  EXPECT_EQ(read_only.ListConversations().size(), 1u);
}

// --- import checks --------------------------------------------------------------------------
Json ValidDocument() {
  return Json::parse(R"({"format": "qwenvk-conversation", "version": 1, "title": "ok", "pinned": false,
      "created_ms": 1, "updated_ms": 2, "settings": {"temperature": 0.7, "top_k": 20},
      "current_leaf": 2,
      "messages": [{"id": 1, "parent": null, "role": "user", "content": "a", "state": "complete"},
                   {"id": 2, "parent": 1, "role": "assistant", "content": "b", "tokens": 3}]})");
}

std::string With(const std::function<void(Json&)>& change) {
  Json json = ValidDocument();
  change(json);
  return json.dump();
}

struct BadImport {
  std::string name;
  std::string text;
  std::vector<std::string> mentions;
};

std::vector<BadImport> BadImports() {
  std::string many = R"({"format": "qwenvk-conversation", "version": 1, "title": "t", "messages": [)";
  for (size_t i = 1; i <= kMaxImportMessages + 1; ++i) {
    if (i > 1) many += ',';
    many += fmt::format(R"({{"id":{},"parent":null,"role":"user","content":""}})", i);
  }
  many += "]}";
  const std::string valid = ValidDocument().dump();
  const auto with_content = [&](const std::string& bytes) {
    std::string text = valid;
    text.replace(text.find("\"a\""), 3, "\"" + bytes + "\"");
    return text;
  };
  return {
      {"bad JSON", R"({"format": "qwenvk-conversation", )", {"not valid JSON"}},
      {"not an object", "[1, 2]", {"one JSON object"}},
      {"wrong format", With([](Json& j) { j["format"] = "chatgpt-export"; }), {"chatgpt-export", "not a QwenVK"}},
      {"newer version", With([](Json& j) { j["version"] = 3; }), {"version 3", "newer QwenVK"}},
      {"thinking as text", With([](Json& j) { j["enable_thinking"] = "off"; }), {"enable_thinking"}},
      {"version as text", With([](Json& j) { j["version"] = "1"; }), {"\"version\"", "whole number"}},
      {"unknown role",
       With([](Json& j) { j["messages"][1]["role"] = "robot"; }),
       {"messages[1] (id 2)", "role \"robot\""}},
      {"dangling parent",
       With([](Json& j) { j["messages"][1]["parent"] = 99; }),
       {"messages[1] (id 2)", "parent 99 does not exist"}},
      {"cycle",
       With([](Json& j) { j["messages"][0]["parent"] = 2; }),
       {"messages[0] (id 1)", "parent 2 is not listed before", "cycle"}},
      {"own parent", With([](Json& j) { j["messages"][1]["parent"] = 2; }), {"parent 2 is not listed before"}},
      {"duplicate id", With([](Json& j) { j["messages"][1]["id"] = 1; }), {"messages[1] (id 1)", "same id"}},
      {"id as text", With([](Json& j) { j["messages"][0]["id"] = "1"; }), {"messages[0].id", "whole number"}},
      {"fractional id", With([](Json& j) { j["messages"][0]["id"] = 1.5; }), {"messages[0].id", "whole number"}},
      {"content a number",
       With([](Json& j) { j["messages"][0]["content"] = 5; }),
       {"messages[0] (id 1).content", "must be a string"}},
      {"pinned as text", With([](Json& j) { j["pinned"] = "yes"; }), {"pinned", "true or false"}},
      {"messages not a list", With([](Json& j) { j["messages"] = Json::object(); }), {"messages must be a list"}},
      {"message not an object", With([](Json& j) { j["messages"][1] = 7; }), {"messages[1] must be an object"}},
      {"missing title", With([](Json& j) { j.erase("title"); }), {"no \"title\""}},
      {"missing content", With([](Json& j) { j["messages"][1].erase("content"); }), {"no \"content\""}},
      {"unknown field", With([](Json& j) { j["colour"] = "red"; }), {"unknown field \"colour\""}},
      {"bad state", With([](Json& j) { j["messages"][0]["state"] = "done"; }), {"state \"done\""}},
      {"negative tokens", With([](Json& j) { j["messages"][1]["tokens"] = -1; }), {"tokens", "from 0"}},
      {"temperature as text",
       With([](Json& j) { j["settings"]["temperature"] = "hot"; }),
       {"settings.temperature", "\"hot\""}},
      {"temperature out of range",
       With([](Json& j) { j["settings"]["temperature"] = 99; }),
       {"settings.temperature", "from 0 to 10"}},
      {"negative top_p", With([](Json& j) { j["settings"]["top_p"] = -0.5; }), {"settings.top_p"}},
      {"zero max_new_tokens", With([](Json& j) { j["settings"]["max_new_tokens"] = 0; }), {"settings.max_new_tokens"}},
      {"negative seed", With([](Json& j) { j["settings"]["seed"] = -3; }), {"settings.seed"}},
      {"unknown setting", With([](Json& j) { j["settings"]["top_a"] = 1; }), {"settings", "\"top_a\""}},
      {"current_leaf not a message", With([](Json& j) { j["current_leaf"] = 42; }), {"current_leaf 42"}},
      {"invalid UTF-8", with_content("\xff\xfe"), {"not valid UTF-8"}},
      {"overlong UTF-8", with_content("\xc0\xaf"), {"not valid UTF-8"}},
      {"UTF-16 surrogate in UTF-8", with_content("\xed\xa0\x80"), {"not valid UTF-8"}},
      {"lone surrogate escape", with_content("\\ud800"), {"not valid JSON"}},
      {"huge file", std::string(kMaxImportBytes + 1, ' '), {"MiB", "at most 64"}},
      {"huge message", with_content(std::string(kMaxTextBytes + 1, 'x')), {"content", "bytes long"}},
      {"huge title", With([](Json& j) { j["title"] = std::string(kMaxTitleBytes + 1, 't'); }), {"title", "bytes"}},
      {"too many messages", many, {"100001 messages", "at most 100000"}},
      {"deep nesting", std::string(100'000, '[') + std::string(100'000, ']'), {"nests deeper"}},
  };
}

TEST_F(ExchangeTest, ImportRejectsBadFilesAndWritesNothing) {
  MakeSample(store_);
  const std::string before = ExportJson(store_, store_.ListConversations()[0].id);
  const uint64_t revision = store_.revision();
  for (const BadImport& bad : BadImports()) {
    SCOPED_TRACE(bad.name);
    try {
      ImportJson(store_, bad.text);
      ADD_FAILURE() << "accepted";
    } catch (const StoreError& e) {
      EXPECT_EQ(e.kind(), StoreErrorKind::InvalidImport);
      ExpectMentions(e.what(), bad.mentions);
      ExpectMentions(e.what(), {"Cannot import this conversation"});
    }
    EXPECT_EQ(store_.revision(), revision);
  }
  ASSERT_EQ(store_.ListConversations().size(), 1u);
  EXPECT_EQ(ExportJson(store_, store_.ListConversations()[0].id), before);
  EXPECT_NO_THROW(ImportJson(store_, ValidDocument().dump()));  // the base of every bad case is fine
}

}  // namespace
}  // namespace qvk::store
