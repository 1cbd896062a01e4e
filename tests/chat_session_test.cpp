// Sections: helpers / titles and continuation prompts / loading / replies / branches / context / streaming
#include "chat/chat_session.h"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "chat/live_attention.h"
#include "chat/loaded_model.h"
#include "model/generate.h"
#include "tests/gpu_fixture.h"
#include "tests/test_util.h"

namespace qvk::chat {
namespace {

using store::MessageState;
using test::GreedySettings;
using test::TestDataDir;

constexpr uint32_t kContext = 2048;

std::string TinyModel() {
  return (TestDataDir() / "qwen2-tiny").string();
}

// Polls `done` for up to a minute (the GPU here may be a slow software rasterizer).
bool WaitFor(const std::function<bool()>& done) {
  return test::WaitFor(done, std::chrono::seconds(60));
}

std::vector<ChatMessage> AsChat(const std::vector<store::Message>& thread, const std::string& system_prompt = "") {
  std::vector<ChatMessage> chat;
  if (!system_prompt.empty()) chat.push_back({"system", system_prompt});
  for (const auto& m : thread) chat.push_back({m.role, m.content});
  return chat;
}

class ChatSessionTest : public test::GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    store_ = std::make_unique<store::Store>(dir_.path() / "chat.db");
    session_ = std::make_unique<ChatSession>(*store_, device());
  }
  void TearDown() override {
    session_.reset();
    store_.reset();
    GpuTest::TearDown();
  }

  void Load(const std::string& path = TinyModel(), uint32_t context = kContext) {
    session_->LoadModel({.path = path, .context = context, .gpu_mem_mib = 0});
    session_->WaitIdle();
    ASSERT_EQ(session_->model_status(), ModelStatus::Ready) << session_->model_error();
  }

  // What the CLI computes for `prompt`: greedy generation on a model of its own.
  std::string Reference(const std::vector<uint32_t>& prompt, uint32_t max_new_tokens,
                        const std::string& path = TinyModel()) {
    LoadedModel model(device(), std::filesystem::path(path), LoadedModelOptions{.context = kContext});
    Sampler sampler(SamplingParams{.greedy = true});
    std::string text;
    Generate(model.engine(), model.files(), prompt, sampler, max_new_tokens, [&](const GenerationStep& step) {
      text += step.text;
      return true;
    });
    return text;
  }

  const ModelFiles& Files() {
    if (!files_) files_ = std::make_unique<ModelFiles>(TinyModel());
    return *files_;
  }

  store::Message Message(store::Id id) {
    auto m = store_->GetMessage(id);
    EXPECT_TRUE(m.has_value()) << "message " << id;
    return m.value_or(store::Message{});
  }

  store::Id Leaf(store::Id conversation) { return store_->GetConversation(conversation).value().current_leaf; }

  test::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ChatSession> session_;
  std::unique_ptr<ModelFiles> files_;
};

// --- titles and continuation prompts ----------------------------------------------------------

TEST(TitleFromMessage, TakesTheFirstLineWithWhitespaceCollapsed) {
  EXPECT_EQ(TitleFromMessage("  What is   the\tcapital of France?\nMore text"), "What is the capital of France?");
  EXPECT_EQ(TitleFromMessage("\n\n  second line first\n"), "second line first");
  EXPECT_EQ(TitleFromMessage("short"), "short");
}

TEST(TitleFromMessage, CutsLongTextAtAWordBoundary) {
  const std::string title =
      TitleFromMessage("Please explain how the attention mechanism in transformer models works in detail");
  EXPECT_LE(title.size(), 48u);
  EXPECT_EQ(title, "Please explain how the attention mechanism in");
  // One long word: cut at 48 characters exactly.
  EXPECT_EQ(TitleFromMessage(std::string(100, 'x')), std::string(48, 'x'));
}

TEST(TitleFromMessage, NeverCutsInsideAUtf8Sequence) {
  std::string text;
  for (int i = 0; i < 60; ++i) text += "\xC3\xA9";  // é, two bytes each
  const std::string title = TitleFromMessage(text);
  EXPECT_EQ(title.size(), 96u);                                  // 48 characters
  for (int i = 0; i < 5; ++i) text = "\xF0\x9F\x98\x80" + text;  // four-byte emoji in front
  const std::string mixed = TitleFromMessage(text);
  EXPECT_EQ(mixed.substr(0, 20), std::string(text.substr(0, 20)));
  EXPECT_EQ(mixed.size(), 20u + 43u * 2u);
}

TEST(EncodeChatContinuation, EndsRightAfterTheLastMessage) {
  const ModelFiles files(TinyModel());
  const std::vector<ChatMessage> chat = {{"user", "Hi there"}, {"assistant", "Hello, how"}};
  const std::vector<uint32_t> ids = files.EncodeChatContinuation(chat);
  const std::string text = files.tokenizer().Decode(ids);
  EXPECT_TRUE(text.ends_with("<|im_start|>assistant\nHello, how")) << text;
  const std::string whole = files.tokenizer().Decode(files.EncodeChat(chat, false));
  EXPECT_TRUE(whole.starts_with(text)) << whole;
  EXPECT_GT(whole.size(), text.size());
  // Trailing whitespace the template keeps is kept.
  const std::string spaced = files.tokenizer().Decode(
      files.EncodeChatContinuation(std::vector<ChatMessage>{{"user", "a"}, {"assistant", "b "}}));
  EXPECT_TRUE(spaced.ends_with("assistant\nb ")) << spaced;
  EXPECT_NE(test::ErrorOf([&] {
              files.EncodeChatContinuation(std::vector<ChatMessage>{{"assistant", "  "}});
            }).find("empty"),
            std::string::npos);
}

// --- loading --------------------------------------------------------------------------------------

TEST_F(ChatSessionTest, LoadsAModelAndReportsProgress) {
  EXPECT_EQ(session_->model_status(), ModelStatus::None);
  EXPECT_EQ(session_->context_length(), 0u);
  Load();
  EXPECT_FLOAT_EQ(session_->load_progress(), 1.0f);
  EXPECT_EQ(session_->model_name(), "qwen2-tiny");
  EXPECT_EQ(session_->context_length(), kContext);
  EXPECT_TRUE(session_->model_error().empty());
  // The tiny model's generation_config.json.
  const store::ConversationSettings defaults = session_->DefaultSettings();
  EXPECT_FLOAT_EQ(defaults.temperature, 0.7f);
  EXPECT_EQ(defaults.top_k, 20u);
  EXPECT_FLOAT_EQ(defaults.top_p, 0.8f);
  EXPECT_FLOAT_EQ(defaults.repetition_penalty, 1.05f);
}

TEST_F(ChatSessionTest, ABadPathFailsWithAMessage) {
  const std::string missing = (dir_.path() / "no-such-model").string();
  session_->LoadModel({.path = missing, .context = 0, .gpu_mem_mib = 0});
  session_->WaitIdle();
  EXPECT_EQ(session_->model_status(), ModelStatus::Failed);
  test::ExpectMentions(session_->model_error(), {missing, "no such file or folder"});
  EXPECT_EQ(session_->model_name(), "");
  // Nothing to chat with.
  const store::Id conversation = store_->CreateConversation("", GreedySettings(4));
  EXPECT_FALSE(session_->Send(conversation, "hello"));
  EXPECT_TRUE(session_->TakeError().has_value());
  EXPECT_EQ(Leaf(conversation), 0);
}

TEST_F(ChatSessionTest, ABudgetTooSmallFailsWithAMessage) {
  session_->LoadModel({.path = TinyModel(), .context = 0, .gpu_mem_mib = 1});
  session_->WaitIdle();
  EXPECT_EQ(session_->model_status(), ModelStatus::Failed);
  test::ExpectMentions(session_->model_error(), {"GPU budget", "model settings"});
}

TEST_F(ChatSessionTest, ReplacesTheModel) {
  Load();
  Load((TestDataDir() / "gguf" / "qwen2-tiny-q8_0.gguf").string());
  EXPECT_EQ(session_->model_name(), "qwen2-tiny-q8_0.gguf");
}

// The app's split setting: the model split by layers across two devices of their own on the
// app's GPU, each named with its layers; the reply is the one device's. A split that cannot be
// made fails the load with its reason.
TEST_F(ChatSessionTest, SplitsTheModelAcrossDevices) {
  session_->LoadModel({.path = TinyModel(), .context = kContext, .devices = "0,0", .split = "1,1"});
  session_->WaitIdle();
  ASSERT_EQ(session_->model_status(), ModelStatus::Ready) << session_->model_error();
  const std::vector<std::string> devices = session_->model_devices();
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_NE(devices[0].find("layers 0-0"), std::string::npos) << devices[0];
  EXPECT_NE(devices[1].find("layers 1-1"), std::string::npos) << devices[1];
  const store::Id conversation = store_->CreateConversation("", GreedySettings(8));
  ASSERT_TRUE(session_->Send(conversation, "What is the capital of France?")) << *session_->TakeError();
  session_->WaitIdle();
  const std::vector<store::Message> thread = store_->Thread(Leaf(conversation));
  ASSERT_EQ(thread.size(), 2u);
  EXPECT_EQ(thread[1].content, Reference(Files().EncodeChat(AsChat({thread[0]}), true), 8));

  Load();
  EXPECT_TRUE(session_->model_devices().empty());
  session_->LoadModel({.path = TinyModel(), .context = kContext, .devices = "0,0", .split = "0,1"});
  session_->WaitIdle();
  EXPECT_EQ(session_->model_status(), ModelStatus::Failed);
  test::ExpectMentions(session_->model_error(), {"Split 0,1: every part must be at least 1"});
}

// --- replies --------------------------------------------------------------------------------------

TEST_F(ChatSessionTest, SendCommitsTheMessageAndStoresTheReply) {
  Load();
  const store::Id conversation = store_->CreateConversation("New chat", GreedySettings(12));
  ASSERT_TRUE(session_->Send(conversation, "What is the capital of France?")) << *session_->TakeError();
  // The user's message is in the store before the reply is generated.
  const store::Message question = Message(store_->Thread(Leaf(conversation)).front().id);
  EXPECT_EQ(question.role, "user");
  EXPECT_EQ(question.content, "What is the capital of France?");
  session_->WaitIdle();
  EXPECT_FALSE(session_->generating());
  EXPECT_FALSE(session_->TakeError().has_value());

  const std::vector<store::Message> thread = store_->Thread(Leaf(conversation));
  ASSERT_EQ(thread.size(), 2u);
  const store::Message& reply = thread[1];
  EXPECT_EQ(reply.role, "assistant");
  EXPECT_EQ(reply.parent_id, question.id);
  EXPECT_EQ(reply.state, MessageState::Complete);
  EXPECT_EQ(reply.content, Reference(Files().EncodeChat(AsChat({question}), true), 12));
  EXPECT_GT(reply.tokens, 0u);
  EXPECT_LE(reply.tokens, 12u);
  EXPECT_GT(reply.time_to_first_token_s, 0);
  EXPECT_EQ(reply.notice, "");
  EXPECT_EQ(store_->GetConversation(conversation)->title, "What is the capital of France?");
  EXPECT_FALSE(session_->live().active);
}

// With a live attention feed set, a reply hands the UI one row per generated token for each view
// it chose, from the prompt's last token on: each a distribution over the keys up to its query.
// The reply is the one generated without it; with the feed unset, the next reply feeds nothing.
TEST_F(ChatSessionTest, ALiveAttentionFeedGetsARowPerToken) {
  Load();
  const ModelConfig& c = Files().config();
  auto feed = std::make_shared<LiveAttention>();
  feed->SetViews({AllHeads(c, 1, HeadReduce::Mean), OneHead(0, 3), KvGroup(c, 1, 0, HeadReduce::Max)});
  session_->SetLiveAttention(feed);
  const store::Id conversation = store_->CreateConversation("New chat", GreedySettings(6));
  ASSERT_TRUE(session_->Send(conversation, "What is the capital of France?"));
  session_->WaitIdle();
  EXPECT_FALSE(session_->TakeError().has_value());
  const std::vector<store::Message> thread = store_->Thread(Leaf(conversation));
  ASSERT_EQ(thread.size(), 2u);
  const std::vector<uint32_t> prompt = Files().EncodeChat(AsChat({thread[0]}), true);
  EXPECT_EQ(thread[1].content, Reference(prompt, 6));

  const LiveAttention::Update update = feed->Take();
  EXPECT_EQ(update.reply, 1u);
  ASSERT_EQ(update.views.size(), 3u);
  for (const LiveAttention::ViewRows& view : update.views) {
    EXPECT_EQ(view.first_position, prompt.size() - 1);
    ASSERT_EQ(view.rows.size(), thread[1].tokens);
    for (size_t k = 0; k < view.rows.size(); ++k) {
      ASSERT_EQ(view.rows[k].size(), prompt.size() + k);
      double sum = 0;
      for (float p : view.rows[k]) sum += p;
      if (view.view.reduce == HeadReduce::Mean) {
        EXPECT_NEAR(sum, 1.0, 1e-5) << "row " << k;
      } else {
        EXPECT_GE(sum, 1.0 - 1e-5) << "row " << k;  // the max of distributions
      }
    }
  }
  EXPECT_TRUE(feed->Take().views[0].rows.empty()) << "taken rows are gone";

  session_->SetLiveAttention(nullptr);
  ASSERT_TRUE(session_->Regenerate(thread[1].id));
  session_->WaitIdle();
  const LiveAttention::Update after = feed->Take();
  EXPECT_EQ(after.reply, 1u);
  EXPECT_TRUE(after.views[0].rows.empty());
}

// The rows a reply fed live are the rows a capture of the finished reply computes again: each
// query's row of its view, equal within the attention kernel's bar (the live rows come from the
// decode step, the capture from a prefill), for every query whose tokens the capture reads as they
// were generated (the reply's text tokenized again may part from the ids generated). The feed's
// tokens are the prompt's, then each generated one, labelled as a capture labels them.
TEST_F(ChatSessionTest, LiveRowsEqualTheRowsOfARecapture) {
  Load();
  const ModelConfig& c = Files().config();
  const std::vector<AttentionRequest> views{OneHead(1, 2), AllHeads(c, 0, HeadReduce::Max),
                                            KvGroup(c, 1, 1, HeadReduce::Mean)};
  auto feed = std::make_shared<LiveAttention>();
  feed->SetViews(views);
  session_->SetLiveAttention(feed);
  const store::Id conversation = store_->CreateConversation("New chat", GreedySettings(8));
  ASSERT_TRUE(session_->Send(conversation, "Name three rivers"));
  session_->WaitIdle();
  session_->SetLiveAttention(nullptr);
  const std::vector<store::Message> thread = store_->Thread(Leaf(conversation));
  ASSERT_EQ(thread.size(), 2u);
  const LiveAttention::Update update = feed->Take();
  const std::vector<uint32_t> prompt = Files().EncodeChat(AsChat({thread[0]}), true);
  EXPECT_EQ(update.prompt_tokens, prompt.size());
  ASSERT_EQ(update.tokens.size(), prompt.size() + thread[1].tokens);
  for (size_t i = 0; i < update.tokens.size(); ++i) {
    if (i < prompt.size()) {
      EXPECT_EQ(update.tokens[i].id, prompt[i]);
    }
    const uint32_t id = update.tokens[i].id;
    EXPECT_EQ(update.tokens[i].piece, Files().tokenizer().Decode(std::span(&id, 1)));
  }

  ASSERT_TRUE(session_->CaptureAttention(thread[1].id, views));
  session_->WaitIdle();
  const std::optional<MessageAttention> captured = session_->TakeAttention();
  ASSERT_TRUE(captured.has_value());
  ASSERT_EQ(captured->error, "");
  size_t same = 0;  // leading tokens the capture shares with the generation
  while (same < captured->ids.size() && same < update.tokens.size() && captured->ids[same] == update.tokens[same].id)
    ++same;
  ASSERT_GE(same, prompt.size() + 1) << "the prompt and the first generated token";
  size_t compared = 0;
  for (size_t v = 0; v < views.size(); ++v) {
    const LiveAttention::ViewRows& live = update.views[v];
    const AttentionMap& map = captured->maps[v];
    EXPECT_EQ(live.first_position, prompt.size() - 1);
    for (size_t k = 0; k < live.rows.size(); ++k) {
      const size_t query = live.first_position + k;
      if (query >= same) break;  // the capture read other tokens from here on
      ASSERT_EQ(live.rows[k].size(), query + 1);
      for (size_t key = 0; key < map.cols; ++key) {
        const float expected = map.values[query * map.cols + key];
        const float got = key <= query ? live.rows[k][key] : 0.0f;
        ASSERT_NEAR(got, expected, 1e-6 + 1e-5 * expected) << "view " << v << " query " << query << " key " << key;
      }
      ++compared;
    }
  }
  EXPECT_GE(compared, views.size());
}

// The feed keeps rows of the views the UI chose last only: a row the engine reduced to an earlier
// choice (the step under way when the UI chose) is dropped, its token kept; the new choice's rows
// begin at the next step, one per view; a step without a row (live attention off) brings its
// token alone.
TEST(LiveAttentionFeed, RowsOfAnEarlierChoiceAreDropped) {
  LiveAttention feed;
  feed.SetViews({OneHead(0, 0)});
  const uint64_t first = feed.views().choice;
  feed.BeginReply({{.id = 1, .piece = "a"}});
  const std::vector<float> two_keys{0.25f, 0.75f};
  feed.Push(AttentionRow{.position = 1, .views = 1, .values = two_keys}, first, {.id = 2, .piece = "b"}, 7);

  feed.SetViews({OneHead(0, 1), {.layer = 1, .plane_heads = 4, .reduce = HeadReduce::Max}});
  const LiveAttention::Views second = feed.views();
  EXPECT_NE(second.choice, first);
  ASSERT_EQ(second.views.size(), 2u);
  EXPECT_EQ(second.views[1].plane_heads, 4u);
  const std::vector<float> three_keys{0.125f, 0.125f, 0.75f};
  feed.Push(AttentionRow{.position = 2, .views = 1, .values = three_keys}, first, {.id = 3}, 7);
  const std::vector<float> two_views{0.5f, 0.25f, 0.125f, 0.125f, 0.0f, 0.5f, 0.25f, 0.25f};
  feed.Push(AttentionRow{.position = 3, .views = 2, .values = two_views}, second.choice, {.id = 4}, 7);
  feed.Push(std::nullopt, second.choice, {.id = 5}, 8);

  const LiveAttention::Update update = feed.Take();
  EXPECT_EQ(update.message, 8);
  ASSERT_EQ(update.tokens.size(), 5u);
  for (uint32_t i = 0; i < 5; ++i) EXPECT_EQ(update.tokens[i].id, i + 1);
  ASSERT_EQ(update.views.size(), 2u);
  for (size_t v = 0; v < 2; ++v) {
    EXPECT_EQ(update.views[v].view.first_head, second.views[v].first_head);
    EXPECT_EQ(update.views[v].first_position, 3u);
    ASSERT_EQ(update.views[v].rows.size(), 1u) << "view " << v;
    EXPECT_EQ(update.views[v].rows[0], std::vector<float>(two_views.begin() + 4 * v, two_views.begin() + 4 * v + 4));
  }
}

// A message's attention, captured on the worker over the conversation as the model read it: a
// reply's tokens are its prompt and then its own, the maps those the engine captures from them;
// a user message's text begins after the template's system prompt and its turn's header. A message that is gone and a
// layer the model lacks come back as errors; without a model nothing is queued.
TEST_F(ChatSessionTest, CapturesTheAttentionOfAMessage) {
  EXPECT_FALSE(session_->CaptureAttention(1, {OneHead(0, 0)}));
  EXPECT_EQ(session_->TakeError(), "no model is loaded: choose one in the model settings");
  Load();
  const ModelConfig& c = Files().config();
  const store::Id conversation = store_->CreateConversation("New chat", GreedySettings(6));
  ASSERT_TRUE(session_->Send(conversation, "What is the capital of France?"));
  session_->WaitIdle();
  const std::vector<store::Message> thread = store_->Thread(Leaf(conversation));
  ASSERT_EQ(thread.size(), 2u);

  const std::vector<AttentionRequest> requests{AllHeads(c, 1, HeadReduce::Mean),
                                               Pooled(EveryHead(c, 0, HeadReduce::Max), 40, 8)};
  ASSERT_TRUE(session_->CaptureAttention(thread[1].id, requests));
  session_->WaitIdle();
  std::optional<MessageAttention> reply = session_->TakeAttention();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->error, "");
  EXPECT_EQ(reply->message, thread[1].id);
  const std::vector<uint32_t> prompt = Files().EncodeChat(AsChat({thread[0]}), true);
  EXPECT_EQ(reply->ids, Files().EncodeChatContinuation(AsChat(thread)));
  EXPECT_EQ(reply->message_begin, prompt.size());  // the generation prompt opened its turn
  EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), reply->ids.begin()));
  ASSERT_EQ(reply->pieces.size(), reply->ids.size());
  std::string text;
  for (const std::string& piece : reply->pieces) text += piece;
  EXPECT_EQ(text, Files().tokenizer().Decode(reply->ids));
  LoadedModel model(device(), std::filesystem::path(TinyModel()), LoadedModelOptions{.context = kContext});
  const std::vector<AttentionMap> expected = model.engine().CaptureAttention(reply->ids, requests);
  ASSERT_EQ(reply->maps.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(reply->maps[i].values.size(), expected[i].values.size());
    for (size_t k = 0; k < expected[i].values.size(); ++k) {
      ASSERT_NEAR(reply->maps[i].values[k], expected[i].values[k], 1e-6 + 1e-5 * expected[i].values[k]) << i;
    }
  }
  EXPECT_FALSE(session_->TakeAttention().has_value()) << "taken once";

  ASSERT_TRUE(session_->CaptureAttention(thread[0].id, {OneHead(0, 1)}));
  session_->WaitIdle();
  const std::optional<MessageAttention> question = session_->TakeAttention();
  ASSERT_TRUE(question.has_value());
  EXPECT_EQ(question->error, "");
  ASSERT_GT(question->message_begin, 0u);
  const std::vector<uint32_t> turn(question->ids.begin() + question->message_begin, question->ids.end());
  EXPECT_EQ(Files().tokenizer().Decode(turn), "What is the capital of France?");
  const std::vector<uint32_t> header(question->ids.begin(), question->ids.begin() + question->message_begin);
  EXPECT_TRUE(Files().tokenizer().Decode(header).ends_with("<|im_start|>user\n"));
  ASSERT_EQ(question->maps.size(), 1u);
  EXPECT_EQ(question->maps[0].rows, question->ids.size());

  ASSERT_TRUE(session_->CaptureAttention(thread[1].id + 100, {OneHead(0, 0)}));
  session_->WaitIdle();
  EXPECT_EQ(session_->TakeAttention()->error, "the message no longer exists");
  ASSERT_TRUE(session_->CaptureAttention(thread[1].id, {OneHead(5, 0)}));
  session_->WaitIdle();
  test::ExpectMentions(session_->TakeAttention()->error, {"layer 5 is out of range"});
}

TEST_F(ChatSessionTest, TheSystemPromptComesFirstAndAGgufModelReplies) {
  Load((TestDataDir() / "gguf" / "qwen2-tiny-q8_0.gguf").string());
  store::ConversationSettings settings = GreedySettings(8);
  settings.system_prompt = "You are terse.";
  const store::Id conversation = store_->CreateConversation("Kept title", settings);
  ASSERT_TRUE(session_->Send(conversation, "Hello"));
  session_->WaitIdle();
  const std::vector<store::Message> thread = store_->Thread(Leaf(conversation));
  ASSERT_EQ(thread.size(), 2u);
  EXPECT_EQ(thread[1].state, MessageState::Complete);
  const std::string gguf = (TestDataDir() / "gguf" / "qwen2-tiny-q8_0.gguf").string();
  const ModelFiles files(gguf);
  EXPECT_EQ(thread[1].content, Reference(files.EncodeChat(AsChat({thread[0]}, "You are terse."), true), 8, gguf));
  EXPECT_EQ(store_->GetConversation(conversation)->title, "Kept title");
}

// Qwen3's thinking switch: a conversation that turns it off gets the empty think block at the end
// of its reply's prompt (Qwen3's template, as transformers renders it with enable_thinking=False);
// unset, the template's default (thinking on) adds nothing. The prompt is the one the live
// attention feed reports and the reply is the one greedy generation makes from it; the context
// gauge counts the same prompt.
TEST_F(ChatSessionTest, Qwen3WithThinkingOffEndsThePromptWithAnEmptyThinkBlock) {
  const test::TempDir folder;
  const std::string qwen3 = test::LinkModelFolder(TestDataDir() / "family/qwen3-tiny",
                                                  TestDataDir() / "family/qwen3-tokenizer", folder.path())
                                .string();
  Load(qwen3);
  const ModelFiles files(qwen3);
  const store::Id conversation = store_->CreateConversation("", GreedySettings(4));
  EXPECT_EQ(session_->Thinking(*store_->GetConversation(conversation)), true);
  EXPECT_EQ(session_->Thinking(store::Conversation{}), true);
  auto feed = std::make_shared<LiveAttention>();
  session_->SetLiveAttention(feed);
  // The next reply's prompt as the feed reports it: its ids and their text.
  const auto reply_prompt = [&] {
    const LiveAttention::Update update = feed->Take();
    std::vector<uint32_t> ids;
    std::string text;
    for (uint32_t i = 0; i < update.prompt_tokens; ++i) {
      ids.push_back(update.tokens[i].id);
      text += update.tokens[i].piece;
    }
    return std::pair(ids, text);
  };

  ASSERT_TRUE(session_->Send(conversation, "Hi"));
  session_->WaitIdle();
  EXPECT_FALSE(session_->TakeError().has_value());
  const auto [default_ids, default_text] = reply_prompt();
  EXPECT_TRUE(default_text.ends_with("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")) << default_text;
  EXPECT_EQ(default_ids, files.EncodeChat(AsChat({store_->Thread(Leaf(conversation))[0]}), true));

  store_->SetConversationThinking(conversation, false);
  EXPECT_EQ(session_->Thinking(*store_->GetConversation(conversation)), false);
  ASSERT_TRUE(session_->Send(conversation, "Again"));
  session_->WaitIdle();
  EXPECT_FALSE(session_->TakeError().has_value());
  const auto [ids, text] = reply_prompt();
  EXPECT_TRUE(text.ends_with("<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"))
      << text;
  const std::vector<store::Message> thread = store_->Thread(Leaf(conversation));
  ASSERT_EQ(thread.size(), 4u);
  const std::vector<ChatMessage> asked = AsChat({thread[0], thread[1], thread[2]});
  EXPECT_EQ(ids, files.EncodeChat(asked, true, {.enable_thinking = false}));
  EXPECT_EQ(ids.size(), files.EncodeChat(asked, true).size() + 4);  // <think> \n\n </think> \n\n
  EXPECT_EQ(thread[3].content, Reference(ids, 4, qwen3));
  EXPECT_EQ(session_->ContextTokens(conversation),
            files.EncodeChat(AsChat(thread), true, {.enable_thinking = false}).size());
}

TEST_F(ChatSessionTest, StopEndsTheReplyAsACompletePartialOne) {
  Load();
  const store::Id conversation = store_->CreateConversation("", GreedySettings(100000));
  ASSERT_TRUE(session_->Send(conversation, "Tell me a long story"));
  ASSERT_TRUE(WaitFor([&] { return session_->live().tokens >= 1; }));
  session_->Stop();
  session_->WaitIdle();
  const store::Message reply = Message(Leaf(conversation));
  EXPECT_EQ(reply.role, "assistant");
  EXPECT_EQ(reply.state, MessageState::Complete);
  EXPECT_GE(reply.tokens, 1u);
  EXPECT_LT(reply.tokens, kContext);
}

TEST_F(ChatSessionTest, SendWhileGeneratingIsRefused) {
  Load();
  const store::Id conversation = store_->CreateConversation("", GreedySettings(100000));
  ASSERT_TRUE(session_->Send(conversation, "first"));
  EXPECT_TRUE(session_->generating());
  EXPECT_FALSE(session_->Send(conversation, "second"));
  const auto error = session_->TakeError();
  ASSERT_TRUE(error.has_value());
  EXPECT_NE(error->find("stop it first"), std::string::npos) << *error;
  EXPECT_FALSE(session_->TakeError().has_value());  // shown once
  session_->Stop();
  session_->WaitIdle();
  const std::vector<store::Message> thread = store_->Thread(Leaf(conversation));
  ASSERT_EQ(thread.size(), 2u);
  EXPECT_EQ(thread[0].content, "first");
}

// --- branches -------------------------------------------------------------------------------------

TEST_F(ChatSessionTest, RegenerateAddsASiblingReply) {
  Load();
  const store::Id conversation = store_->CreateConversation("", GreedySettings(6));
  ASSERT_TRUE(session_->Send(conversation, "Hi"));
  session_->WaitIdle();
  const store::Message first = Message(Leaf(conversation));
  ASSERT_TRUE(session_->Regenerate(first.id));
  session_->WaitIdle();
  const std::vector<store::Message> replies = store_->Siblings(conversation, first.parent_id);
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].id, first.id);
  EXPECT_EQ(replies[1].role, "assistant");
  EXPECT_EQ(replies[1].state, MessageState::Complete);
  EXPECT_EQ(replies[1].content, first.content);  // greedy: the same reply again
  EXPECT_EQ(Leaf(conversation), replies[1].id);
  // Only replies are regenerated.
  EXPECT_FALSE(session_->Regenerate(first.parent_id));
  EXPECT_TRUE(session_->TakeError().has_value());
}

TEST_F(ChatSessionTest, EditingAUserMessageStartsABranchWithItsOwnReply) {
  Load();
  const store::Id conversation = store_->CreateConversation("", GreedySettings(6));
  ASSERT_TRUE(session_->Send(conversation, "Hello there"));
  session_->WaitIdle();
  const std::vector<store::Message> old_branch = store_->Thread(Leaf(conversation));
  ASSERT_EQ(old_branch.size(), 2u);

  ASSERT_TRUE(session_->Edit(old_branch[0].id, "Good morning"));
  session_->WaitIdle();
  const std::vector<store::Message> new_branch = store_->Thread(Leaf(conversation));
  ASSERT_EQ(new_branch.size(), 2u);
  EXPECT_EQ(new_branch[0].content, "Good morning");
  EXPECT_EQ(new_branch[0].parent_id, 0);
  EXPECT_EQ(new_branch[1].role, "assistant");
  EXPECT_EQ(new_branch[1].content, Reference(Files().EncodeChat(AsChat({new_branch[0]}), true), 6));
  EXPECT_EQ(store_->Siblings(conversation, 0).size(), 2u);
  // The old branch is untouched.
  const std::vector<store::Message> old_again = store_->Thread(old_branch[1].id);
  ASSERT_EQ(old_again.size(), 2u);
  EXPECT_EQ(old_again[0].content, "Hello there");
  EXPECT_EQ(old_again[1].content, old_branch[1].content);
}

TEST_F(ChatSessionTest, EditingAReplyOnlyStoresIt) {
  Load();
  const store::Id conversation = store_->CreateConversation("", GreedySettings(6));
  ASSERT_TRUE(session_->Send(conversation, "Hello"));
  session_->WaitIdle();
  const store::Message reply = Message(Leaf(conversation));
  ASSERT_TRUE(session_->Edit(reply.id, "A better answer"));
  EXPECT_FALSE(session_->generating());
  session_->WaitIdle();
  const store::Message edited = Message(Leaf(conversation));
  EXPECT_EQ(edited.content, "A better answer");
  EXPECT_EQ(edited.parent_id, reply.parent_id);
  EXPECT_EQ(store_->Siblings(conversation, reply.parent_id).size(), 2u);
}

TEST_F(ChatSessionTest, ContinueExtendsAnInterruptedReply) {
  Load();
  const store::Id conversation = store_->CreateConversation("", GreedySettings(8));
  const store::Id question = store_->AddMessage(conversation, 0, "user", "Count to ten", MessageState::Complete);
  const store::Id partial =
      store_->AddMessage(conversation, question, "assistant", "One, two,", MessageState::Interrupted);
  ASSERT_TRUE(session_->Continue(partial));
  session_->WaitIdle();
  EXPECT_FALSE(session_->TakeError().has_value());
  const store::Message continued = Message(partial);
  EXPECT_EQ(continued.state, MessageState::Complete);
  const std::vector<ChatMessage> chat = {{"user", "Count to ten"}, {"assistant", "One, two,"}};
  const std::string more = Reference(Files().EncodeChatContinuation(chat), 8);
  EXPECT_FALSE(more.empty());
  EXPECT_EQ(continued.content, "One, two," + more);
  EXPECT_GT(continued.tokens, 0u);
  EXPECT_EQ(Leaf(conversation), partial);
  EXPECT_EQ(store_->Siblings(conversation, question).size(), 1u);
}

// --- context ----------------------------------------------------------------------------------------

TEST_F(ChatSessionTest, ContextTokensCountTheRenderedBranch) {
  Load();
  store::ConversationSettings settings = GreedySettings(5);
  settings.system_prompt = "Be brief.";
  const store::Id conversation = store_->CreateConversation("", settings);
  EXPECT_EQ(session_->ContextTokens(conversation), Files().EncodeChat(AsChat({}, "Be brief."), true).size());
  ASSERT_TRUE(session_->Send(conversation, "How many tokens is this?"));
  session_->WaitIdle();
  const std::vector<store::Message> thread = store_->Thread(Leaf(conversation));
  const size_t expected = Files().EncodeChat(AsChat(thread, "Be brief."), true).size();
  EXPECT_EQ(session_->ContextTokens(conversation), expected);
  EXPECT_EQ(session_->ContextTokens(conversation), expected);  // from the cache
  // A write changes the count.
  store_->AddMessage(conversation, thread.back().id, "user", "And now?", MessageState::Complete);
  EXPECT_GT(session_->ContextTokens(conversation), expected);
}

// The UI thread's count is made on the counting thread: none before the first is in, then what
// ContextTokens counts; after a write, the last count stays until the new one is in.
TEST_F(ChatSessionTest, BackgroundCountsAreContextTokens) {
  Load();
  const store::Id conversation = store_->CreateConversation("", GreedySettings(5));
  const store::Id first = store_->AddMessage(conversation, 0, "user", "Count me", MessageState::Complete);
  const auto counted = [&](uint32_t expected) {
    // Polled as the UI does each frame; a count that never comes ends in the test's timeout.
    std::optional<uint32_t> tokens;
    while (!(tokens = session_->CountContextTokensInBackground(conversation)) || *tokens != expected) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return *tokens;
  };
  const uint32_t one_turn = session_->ContextTokens(conversation);
  EXPECT_EQ(counted(one_turn), one_turn);
  store_->AddMessage(conversation, first, "assistant", "Counted", MessageState::Complete);
  const std::optional<uint32_t> right_after = session_->CountContextTokensInBackground(conversation);
  ASSERT_TRUE(right_after.has_value());  // the last count, or the new one if it was quick
  const uint32_t two_turns = session_->ContextTokens(conversation);
  EXPECT_GT(two_turns, one_turn);
  EXPECT_TRUE(*right_after == one_turn || *right_after == two_turns);
  EXPECT_EQ(counted(two_turns), two_turns);
  // Another conversation: nothing to show before its first count (the last is of another).
  EXPECT_FALSE(session_->CountContextTokensInBackground(store_->CreateConversation("", GreedySettings(5))).has_value());
}

// `turns` question-and-answer pairs, so a small context cannot hold them all.
void AddEarlierTurns(store::Store& store, store::Id conversation, int turns) {
  store::Id leaf = 0;
  for (int turn = 0; turn < turns; ++turn) {
    leaf = store.AddMessage(conversation, leaf, "user", "This is an earlier question number " + std::to_string(turn),
                            MessageState::Complete);
    leaf = store.AddMessage(conversation, leaf, "assistant", "And this is its answer", MessageState::Complete);
  }
}

TEST_F(ChatSessionTest, OldTurnsAreDroppedToFitTheContext) {
  Load(TinyModel(), 64);
  const store::Id conversation = store_->CreateConversation("", GreedySettings(4));
  AddEarlierTurns(*store_, conversation, 4);
  ASSERT_TRUE(session_->Send(conversation, "Last one"));
  session_->WaitIdle();
  EXPECT_FALSE(session_->TakeError().has_value());
  const store::Message reply = Message(Leaf(conversation));
  EXPECT_EQ(reply.role, "assistant");
  EXPECT_EQ(reply.state, MessageState::Complete);
  EXPECT_TRUE(reply.notice.starts_with("Dropped ")) << reply.notice;
  EXPECT_TRUE(reply.notice.ends_with("earliest messages to fit the context of 64 tokens.")) << reply.notice;
}

// Each notice is a sentence on its own line, not run into the next.
TEST_F(ChatSessionTest, ADroppedTurnAndAFullContextAreSeparateNotices) {
  Load(TinyModel(), 64);
  const store::Id conversation = store_->CreateConversation("", GreedySettings(100000));
  AddEarlierTurns(*store_, conversation, 4);
  ASSERT_TRUE(session_->Send(conversation, "Last one"));
  session_->WaitIdle();
  EXPECT_FALSE(session_->TakeError().has_value());
  const std::string notice = Message(Leaf(conversation)).notice;
  const size_t line_break = notice.find('\n');
  ASSERT_NE(line_break, std::string::npos) << notice;
  EXPECT_TRUE(notice.starts_with("Dropped ")) << notice;
  EXPECT_EQ(notice.substr(line_break - std::string_view("64 tokens.").size(), std::string::npos),
            "64 tokens.\nThe context of 64 tokens is full: the reply stopped there.");
}

TEST_F(ChatSessionTest, AMessageTooLongForTheContextGetsNoReply) {
  Load(TinyModel(), 64);
  const store::Id conversation = store_->CreateConversation("", GreedySettings(4));
  std::string long_text;
  for (int i = 0; i < 80; ++i) long_text += "word ";
  ASSERT_TRUE(session_->Send(conversation, long_text));
  session_->WaitIdle();
  const auto error = session_->TakeError();
  ASSERT_TRUE(error.has_value());
  EXPECT_NE(error->find("does not fit the context of 64 tokens"), std::string::npos) << *error;
  const std::vector<store::Message> thread = store_->Thread(Leaf(conversation));
  ASSERT_EQ(thread.size(), 1u);
  EXPECT_EQ(thread[0].role, "user");

  // A reply too long to continue stays as it was.
  const store::Id partial =
      store_->AddMessage(conversation, thread[0].id, "assistant", long_text, MessageState::Interrupted);
  ASSERT_TRUE(session_->Continue(partial));
  session_->WaitIdle();
  EXPECT_TRUE(session_->TakeError().has_value());
  EXPECT_EQ(Message(partial).state, MessageState::Interrupted);
  EXPECT_EQ(Message(partial).content, long_text);
}

// --- streaming --------------------------------------------------------------------------------------

TEST_F(ChatSessionTest, AStreamingReplyIsFlushedToTheDatabase) {
  Load();
  const store::Id conversation = store_->CreateConversation("", GreedySettings(100000));
  store::Store reader(store_->path());  // another connection sees only what was committed
  ASSERT_TRUE(session_->Send(conversation, "Write a lot"));
  ASSERT_TRUE(WaitFor([&] { return session_->live().message != 0; }));
  const store::Id reply = session_->live().message;

  size_t first_seen = 0;
  bool grew = false;
  MessageState state_while_streaming = MessageState::Complete;
  WaitFor([&] {
    if (!session_->generating()) return true;
    const auto row = reader.GetMessage(reply);
    if (!row) return false;
    state_while_streaming = row->state;
    if (first_seen == 0) first_seen = row->content.size();
    grew = first_seen != 0 && row->content.size() > first_seen;
    return grew;
  });
  EXPECT_TRUE(session_->generating()) << "the reply ended before a flush was seen";
  // The UI's view while streaming: the engine's count of prompt and reply.
  const LiveReply live = session_->live();
  EXPECT_TRUE(live.active);
  EXPECT_FALSE(live.prefilling);
  EXPECT_EQ(live.conversation, conversation);
  EXPECT_GE(session_->ContextTokens(conversation), live.tokens);
  session_->Stop();
  session_->WaitIdle();
  EXPECT_TRUE(grew);
  EXPECT_EQ(state_while_streaming, MessageState::Streaming);
  const auto final_row = reader.GetMessage(reply);
  ASSERT_TRUE(final_row.has_value());
  EXPECT_EQ(final_row->state, MessageState::Complete);
  EXPECT_GE(final_row->content.size(), first_seen);
}

}  // namespace
}  // namespace qvk::chat
