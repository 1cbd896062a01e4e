// Sections: helpers / replies / faults
// The chat session with a remote engine (server/remote_engine.h) against a real `qwenvk serve` on
// the tiny fixture model: the same reply as the local engine, and every network fault ending in
// a clear error with what streamed kept; and against a fake server that sends what no
// OpenAI-compatible server would.
#include "server/remote_engine.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <httplib.h>

#include <gtest/gtest.h>

#include "chat/chat_session.h"
#include "server/openai_api.h"
#include "tests/gpu_fixture.h"
#include "tests/serve_process.h"
#include "tests/test_util.h"

namespace qvk::server {
namespace {

using chat::ChatSession;
using store::MessageState;

std::string TinyModel() {
  return (test::TestDataDir() / "qwen2-tiny").string();
}

// --- helpers ----------------------------------------------------------------------------------

using test::GreedySettings;
using test::ServeProcess;
using test::WaitFor;

// A port nobody listens on: bound, then let go.
uint16_t ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t size = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  close(fd);
  return ntohs(address.sin_port);
}

class RemoteEngineTest : public test::GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    store_ = std::make_unique<store::Store>(dir_.path() / "chat.db");
    session_ = std::make_unique<ChatSession>(*store_, device());
    session_->SetReplySources([this](const store::ConversationEngine& engine) {
      return std::make_unique<RemoteEngine>(RemoteEndpoint{.base_url = engine.base_url, .api_key = api_key_},
                                            engine.model);
    });
  }
  void TearDown() override {
    session_.reset();
    store_.reset();
    GpuTest::TearDown();
  }

  store::Id Conversation(const std::string& url, uint32_t max_new_tokens) {
    const store::Id c = store_->CreateConversation("", GreedySettings(max_new_tokens));
    if (!url.empty()) store_->SetConversationEngine(c, {.base_url = url, .model = "qwen2-tiny"});
    return c;
  }
  // The reply of the conversation's branch on screen.
  store::Message LastMessage(store::Id conversation) {
    return store_->Thread(store_->GetConversation(conversation)->current_leaf).back();
  }

  test::TempDir dir_;
  std::string api_key_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ChatSession> session_;
};

// --- replies ----------------------------------------------------------------------------------

TEST_F(RemoteEngineTest, AStreamedReplyEqualsTheLocalGreedyReply) {
  ServeProcess serve(dir_.path() / "serve.log", 0);
  session_->LoadModel({.path = TinyModel(), .context = 2048, .gpu_mem_mib = 0});
  session_->WaitIdle();
  ASSERT_EQ(session_->model_status(), chat::ModelStatus::Ready);

  const store::Id local = Conversation("", 24);
  ASSERT_TRUE(session_->Send(local, "Tell me about squid"));
  session_->WaitIdle();
  const store::Id remote = Conversation(serve.url(), 24);
  ASSERT_TRUE(session_->Send(remote, "Tell me about squid"));
  session_->WaitIdle();
  EXPECT_FALSE(session_->TakeError());

  const store::Message expected = LastMessage(local);
  const store::Message got = LastMessage(remote);
  EXPECT_EQ(got.role, "assistant");
  EXPECT_FALSE(got.content.empty());
  EXPECT_EQ(got.content, expected.content);
  EXPECT_EQ(got.state, MessageState::Complete);
  EXPECT_EQ(got.tokens, expected.tokens);  // the server's usage count
  // The server runs the loaded model, so the gauge counts exactly.
  EXPECT_TRUE(session_->CountsExactly(store_->GetConversation(remote)->engine));
  EXPECT_EQ(session_->ContextTokens(remote), session_->ContextTokens(local));
  EXPECT_FALSE(session_->CountsExactly({.base_url = serve.url(), .model = "llama-3-70b"}));

  EXPECT_EQ(ListRemoteModels({.base_url = serve.url()}), std::vector<std::string>{"qwen2-tiny"});
}

// A Qwen3 conversation with thinking off: the switch goes to the server as chat_template_kwargs,
// whose prompt then ends with the empty think block, so the reply is the local one with thinking
// off (which differs from the one with thinking on).
TEST_F(RemoteEngineTest, TheThinkingSwitchReachesTheServer) {
  const test::TempDir folder;
  const std::filesystem::path qwen3 = test::LinkModelFolder(
      test::TestDataDir() / "family/qwen3-tiny", test::TestDataDir() / "family/qwen3-tokenizer", folder.path());
  ServeProcess serve(dir_.path() / "serve.log", 0, "", qwen3);
  session_->LoadModel({.path = qwen3.string(), .context = 2048, .gpu_mem_mib = 0});
  session_->WaitIdle();
  ASSERT_EQ(session_->model_status(), chat::ModelStatus::Ready);

  const auto reply = [&](const std::string& url, std::optional<bool> thinking) {
    const store::Id c = store_->CreateConversation("", GreedySettings(8));
    if (!url.empty()) store_->SetConversationEngine(c, {.base_url = url, .model = qwen3.filename().string()});
    store_->SetConversationThinking(c, thinking);
    EXPECT_TRUE(session_->Send(c, "What is 2+2?"));
    session_->WaitIdle();
    EXPECT_FALSE(session_->TakeError());
    return LastMessage(c).content;
  };
  const std::string local_off = reply("", false);
  EXPECT_NE(reply("", std::nullopt), local_off);
  EXPECT_EQ(reply(serve.url(), false), local_off);
  EXPECT_EQ(reply(serve.url(), std::nullopt), reply("", std::nullopt));
}

// --- faults -----------------------------------------------------------------------------------

TEST_F(RemoteEngineTest, ARefusedConnectionSaysSoAndKeepsTheMessage) {
  const std::string url = "http://127.0.0.1:" + std::to_string(ClosedPort()) + "/v1";
  const store::Id c = Conversation(url, 8);
  // No model on this computer is needed for a remote conversation.
  ASSERT_TRUE(session_->Send(c, "hello?"));
  session_->WaitIdle();
  const auto error = session_->TakeError();
  ASSERT_TRUE(error);
  test::ExpectMentions(*error, {"Could not connect", url, "running"});
  EXPECT_EQ(LastMessage(c).role, "user");
  EXPECT_EQ(LastMessage(c).content, "hello?");
  test::ExpectMentions(test::ErrorOf([&] { ListRemoteModels({.base_url = url}); }), {"Could not connect"});
  test::ExpectMentions(test::ErrorOf([&] { ListRemoteModels({.base_url = "ftp://x/v1"}); }), {"http://"});
}

TEST_F(RemoteEngineTest, AWrongApiKeyIsA401ThatNamesTheKey) {
  ServeProcess serve(dir_.path() / "serve.log", 0, "right-key");
  api_key_ = "wrong-key";
  const store::Id c = Conversation(serve.url(), 8);
  ASSERT_TRUE(session_->Send(c, "hello?"));
  session_->WaitIdle();
  const auto error = session_->TakeError();
  ASSERT_TRUE(error);
  test::ExpectMentions(*error, {"401", "API key", "Settings > Engines"});
  EXPECT_EQ(LastMessage(c).role, "user");
  test::ExpectMentions(test::ErrorOf([&] { ListRemoteModels({.base_url = serve.url(), .api_key = "wrong"}); }),
                       {"401"});
  EXPECT_EQ(ListRemoteModels({.base_url = serve.url(), .api_key = "right-key"}).size(), 1u);
}

TEST_F(RemoteEngineTest, AServerKilledMidReplyLeavesItInterruptedAndContinueFinishesIt) {
  auto serve = std::make_unique<ServeProcess>(dir_.path() / "serve.log", 0);
  const uint16_t port = serve->port();
  const store::Id c = Conversation(serve->url(), 400);
  ASSERT_TRUE(session_->Send(c, "Tell me a long story about squid"));
  ASSERT_TRUE(WaitFor([&] { return session_->live().tokens >= 3 || !session_->generating(); }));
  ASSERT_TRUE(session_->generating()) << "the reply ended before the server could be killed";
  serve->Kill();
  session_->WaitIdle();
  const auto error = session_->TakeError();
  ASSERT_TRUE(error);
  test::ExpectMentions(*error, {"stopped sending", "Continue"});
  const store::Message partial = LastMessage(c);
  EXPECT_EQ(partial.role, "assistant");
  EXPECT_FALSE(partial.content.empty());
  EXPECT_EQ(partial.state, MessageState::Interrupted);

  // Continue while the server is down fails the same clear way and keeps the text.
  ASSERT_TRUE(session_->Continue(partial.id));
  session_->WaitIdle();
  ASSERT_TRUE(session_->TakeError());
  EXPECT_EQ(store_->GetMessage(partial.id)->content, partial.content);

  serve = std::make_unique<ServeProcess>(dir_.path() / "serve2.log", port);
  ASSERT_TRUE(session_->Continue(partial.id));
  session_->WaitIdle();
  EXPECT_FALSE(session_->TakeError());
  const store::Message finished = *store_->GetMessage(partial.id);
  EXPECT_EQ(finished.state, MessageState::Complete);
  EXPECT_GT(finished.content.size(), partial.content.size());
  EXPECT_EQ(finished.content.substr(0, partial.content.size()), partial.content);
  EXPECT_EQ(LastMessage(c).id, partial.id);  // continued in place, no new branch
}

// A server that answers as no OpenAI-compatible server would: a list of models larger than any,
// and a reply whose second chunk is not a chunk. Each ends in a sentence naming the server, and
// what came before it is kept.
TEST_F(RemoteEngineTest, AServerThatSendsWhatNoOpenAiServerWouldIsNamedAndWhatCameIsKept) {
  httplib::Server fake;
  fake.Get("/v1/models", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(std::string(kMaxReplyBytes + 1, ' '), "application/json");
  });
  fake.Post("/v1/chat/completions", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(R"(data: {"choices": [{"delta": {"role": "assistant", "content": "Hi"}}],)"
                         R"( "usage": {"prompt_tokens": "5"}})"
                         "\n\n"
                         R"(data: {"choices": [7]})"
                         "\n\n",
                         "text/event-stream");
  });
  const int port = fake.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread serving([&] { fake.listen_after_bind(); });
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
  test::ExpectMentions(test::ErrorOf([&] { ListRemoteModels({.base_url = url}); }),
                       {url + "/models", "more than 8 MiB", "OpenAI-compatible"});

  const store::Id c = Conversation(url, 8);
  ASSERT_TRUE(session_->Send(c, "hello?"));
  session_->WaitIdle();
  const auto error = session_->TakeError();
  ASSERT_TRUE(error);
  test::ExpectMentions(*error, {url, "not OpenAI's", "choice is not an object", "what came is kept"});
  const store::Message partial = LastMessage(c);
  EXPECT_EQ(partial.role, "assistant");
  EXPECT_EQ(partial.content, "Hi");
  EXPECT_EQ(partial.state, MessageState::Interrupted);
  fake.stop();
  serving.join();
}

}  // namespace
}  // namespace qvk::server
