// Sections: errors / chat requests / refusals / completions / responses and chunks / a client's side / stop sequences
#include "server/openai_api.h"

#include <string>

#include <gtest/gtest.h>

#include "base/error.h"
#include "tests/expect_error.h"

namespace qvk::server {
namespace {

using nlohmann::json;

// The ApiError a body gets from `parse`, or a failure when it is accepted.
template <typename Parse>
ApiError RefusalOf(Parse parse, const std::string& body) {
  try {
    parse(body);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "");
}

ApiError ChatRefusal(const json& request) {
  return RefusalOf(ParseChatCompletionRequest, request.dump());
}

json ChatWith(const json& fields) {
  json request = {{"model", "m"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  request.update(fields);
  return request;
}

// --- errors -------------------------------------------------------------------------------

TEST(OpenAiApi, ErrorJsonHasOpenAisShape) {
  const json body = ErrorJson(ApiError(400, "bad", "invalid_request_error", "temperature", "x"));
  EXPECT_EQ(body, json::parse(R"({"error":{"message":"bad","type":"invalid_request_error","param":"temperature",
                                  "code":"x"}})"));
  const json bare = ErrorJson(ApiError(500, "boom", "server_error"));
  EXPECT_TRUE(bare["error"]["param"].is_null());
  EXPECT_TRUE(bare["error"]["code"].is_null());
}

TEST(OpenAiApi, ErrorBodiesReadBack) {
  const ApiError original(401, "no key", "authentication_error", "", "invalid_api_key");
  const ApiError read = ApiErrorFromBody(401, ErrorJson(original).dump());
  EXPECT_EQ(read.status(), 401);
  EXPECT_STREQ(read.what(), "no key");
  EXPECT_EQ(read.type(), "authentication_error");
  EXPECT_EQ(read.code(), "invalid_api_key");
  const ApiError html = ApiErrorFromBody(502, "<html>Bad Gateway</html>");
  EXPECT_EQ(html.status(), 502);
  EXPECT_STREQ(html.what(), "<html>Bad Gateway</html>");
  EXPECT_EQ(html.type(), "server_error");
}

// --- chat requests ------------------------------------------------------------------------

TEST(OpenAiApi, ParsesAChatRequest) {
  const ChatCompletionRequest r = ParseChatCompletionRequest(R"({
    "model": "qwen", "stream": true, "stream_options": {"include_usage": true},
    "messages": [{"role": "developer", "content": "be brief"},
                 {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                 {"role": "assistant", "content": "c"}],
    "temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1,
    "max_tokens": 7, "stop": "\n\n", "seed": -1, "n": 1, "presence_penalty": 0, "frequency_penalty": 0,
    "logprobs": false, "tools": [], "tool_choice": "none", "response_format": {"type": "text"},
    "user": "ignored", "metadata": {"ignored": true}})");
  EXPECT_EQ(r.model, "qwen");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");  // "developer" is the system prompt
  EXPECT_EQ(r.messages[1].content, "ab");
  EXPECT_EQ(r.messages[2].role, "assistant");
  EXPECT_FLOAT_EQ(*r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(*r.sampling.top_p, 0.9f);
  EXPECT_EQ(*r.sampling.top_k, 40u);
  EXPECT_FLOAT_EQ(*r.sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(*r.sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(*r.sampling.max_tokens, 7u);
  EXPECT_EQ(r.sampling.stop, std::vector<std::string>{"\n\n"});
  EXPECT_EQ(*r.sampling.seed, ~uint64_t{0});
}

TEST(OpenAiApi, UnsetAndNullFieldsTakeTheDefaults) {
  const ChatCompletionRequest r = ParseChatCompletionRequest(
      R"({"messages": [{"role": "user", "content": "hi"}], "temperature": null, "stop": null, "stream": null})");
  EXPECT_EQ(r.model, "");
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.sampling.temperature);
  EXPECT_FALSE(r.sampling.max_tokens);
  EXPECT_TRUE(r.sampling.stop.empty());
  EXPECT_FALSE(r.sampling.seed);
}

TEST(OpenAiApi, MaxCompletionTokensWinsOverMaxTokens) {
  const ChatCompletionRequest r =
      ParseChatCompletionRequest(ChatWith({{"max_tokens", 9}, {"max_completion_tokens", 3}}).dump());
  EXPECT_EQ(*r.sampling.max_tokens, 3u);
}

TEST(OpenAiApi, ARequestReadsBackAsItWasBuilt) {
  ChatCompletionRequest r;
  r.model = "qwen";
  r.messages = {{"system", "s"}, {"user", "u"}};
  r.stream = true;
  r.include_usage = true;
  r.sampling.temperature = 0.25f;
  r.sampling.max_tokens = 5;
  r.sampling.stop = {"x", "y"};
  r.sampling.seed = 42;
  const ChatCompletionRequest back = ParseChatCompletionRequest(ChatCompletionRequestJson(r).dump());
  EXPECT_EQ(back.model, r.model);
  ASSERT_EQ(back.messages.size(), 2u);
  EXPECT_EQ(back.messages[1].content, "u");
  EXPECT_TRUE(back.stream);
  EXPECT_TRUE(back.include_usage);
  EXPECT_FLOAT_EQ(*back.sampling.temperature, 0.25f);
  EXPECT_EQ(*back.sampling.max_tokens, 5u);
  EXPECT_EQ(back.sampling.stop, r.sampling.stop);
  EXPECT_EQ(*back.sampling.seed, 42u);
}

TEST(OpenAiApi, AContinuationReadsBackAndNeedsAnAssistantMessageLast) {
  ChatCompletionRequest r;
  r.messages = {{"user", "u"}, {"assistant", "half a rep"}};
  r.continue_final_message = true;
  const json request = ChatCompletionRequestJson(r);
  EXPECT_EQ(request["add_generation_prompt"], false);
  EXPECT_TRUE(ParseChatCompletionRequest(request.dump()).continue_final_message);
  EXPECT_FALSE(ParseChatCompletionRequest(ChatWith(json::object()).dump()).continue_final_message);
  const ApiError e = RefusalOf(ParseChatCompletionRequest, ChatWith({{"continue_final_message", true}}).dump());
  EXPECT_EQ(e.status(), 400);
  EXPECT_EQ(e.param(), "continue_final_message");
}

// vLLM's and llama.cpp's way to turn Qwen3's thinking off; a client (the app's remote engine)
// sends it only when the conversation sets it.
TEST(OpenAiApi, ChatTemplateKwargsCarryTheThinkingSwitch) {
  EXPECT_EQ(ParseChatCompletionRequest(ChatWith({{"chat_template_kwargs", {{"enable_thinking", false}}}}).dump())
                .template_options.enable_thinking,
            false);
  EXPECT_EQ(ParseChatCompletionRequest(ChatWith({{"chat_template_kwargs", {{"enable_thinking", true}}}}).dump())
                .template_options.enable_thinking,
            true);
  EXPECT_EQ(ParseChatCompletionRequest(ChatWith({{"chat_template_kwargs", nullptr}}).dump()).template_options,
            TemplateOptions{});
  EXPECT_EQ(ParseChatCompletionRequest(ChatWith({{"chat_template_kwargs", json::object()}}).dump()).template_options,
            TemplateOptions{});

  ChatCompletionRequest r;
  r.messages = {{"user", "u"}};
  EXPECT_FALSE(ChatCompletionRequestJson(r).contains("chat_template_kwargs"));
  r.template_options.enable_thinking = false;
  const json request = ChatCompletionRequestJson(r);
  EXPECT_EQ(request["chat_template_kwargs"], json({{"enable_thinking", false}}));
  EXPECT_EQ(ParseChatCompletionRequest(request.dump()).template_options, r.template_options);

  const ApiError other = ChatRefusal(ChatWith({{"chat_template_kwargs", {{"reasoning_effort", "low"}}}}));
  EXPECT_EQ(other.status(), 400);
  EXPECT_EQ(other.param(), "chat_template_kwargs.reasoning_effort");
  EXPECT_NE(std::string(other.what()).find("only enable_thinking"), std::string::npos) << other.what();
  const ApiError text = ChatRefusal(ChatWith({{"chat_template_kwargs", {{"enable_thinking", "no"}}}}));
  EXPECT_EQ(text.param(), "chat_template_kwargs.enable_thinking");
  EXPECT_NE(std::string(text.what()).find("true or false"), std::string::npos) << text.what();
  EXPECT_EQ(ChatRefusal(ChatWith({{"chat_template_kwargs", "enable_thinking=false"}})).param(), "chat_template_kwargs");
}

// --- refusals -----------------------------------------------------------------------------

TEST(OpenAiApi, RefusesBodiesThatAreNotARequest) {
  for (const std::string body : {"", "{", "not json", "[1,2]", "\"text\"", "null", "{\"messages\": [}"}) {
    const ApiError e = RefusalOf(ParseChatCompletionRequest, body);
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_EQ(e.type(), "invalid_request_error");
  }
  const ApiError deep = RefusalOf(ParseChatCompletionRequest, std::string(100, '[') + std::string(100, ']'));
  EXPECT_NE(std::string(deep.what()).find("deeper"), std::string::npos) << deep.what();
}

TEST(OpenAiApi, RefusesBadMessages) {
  const json cases[] = {
      json::object(),
      {{"messages", json::array()}},
      {{"messages", "hi"}},
      {{"messages", json::array({"hi"})}},
      {{"messages", json::array({{{"role", "user"}}})}},
      {{"messages", json::array({{{"role", "user"}, {"content", 5}}})}},
      {{"messages", json::array({{{"role", "robot"}, {"content", "x"}}})}},
      {{"messages", json::array({{{"content", "x"}}})}},
      {{"messages", json::array({{{"role", "user"}, {"content", json::array({{{"type", "text"}}})}}})}},
  };
  for (const json& request : cases) {
    const ApiError e = ChatRefusal(request);
    EXPECT_EQ(e.status(), 400) << request;
    EXPECT_TRUE(e.param().starts_with("messages")) << request << ": " << e.param();
  }
}

TEST(OpenAiApi, RefusesWhatItCannotHonour) {
  const std::pair<json, std::string> cases[] = {
      {{{"n", 2}}, "n"},
      {{{"presence_penalty", 0.5}}, "presence_penalty"},
      {{{"frequency_penalty", -1}}, "frequency_penalty"},
      {{{"logprobs", true}}, "logprobs"},
      {{{"top_logprobs", 3}}, "top_logprobs"},
      {{{"tools", json::array({{{"type", "function"}}})}}, "tools"},
      {{{"functions", json::array({json::object()})}}, "functions"},
      {{{"tool_choice", "auto"}}, "tool_choice"},
      {{{"response_format", {{"type", "json_object"}}}}, "response_format"},
      {{{"logit_bias", {{"42", 100}}}}, "logit_bias"},
      {{{"messages", json::array({{{"role", "tool"}, {"content", "x"}}})}}, "messages[0].role"},
      {{{"messages", json::array({{{"role", "assistant"}, {"content", "x"}, {"tool_calls", json::array({1})}}})}},
       "messages[0].tool_calls"},
      {{{"messages",
         json::array({{{"role", "user"}, {"content", json::array({{{"type", "image_url"}, {"image_url", "u"}}})}}})}},
       "messages[0].content"},
  };
  for (const auto& [fields, param] : cases) {
    const ApiError e = ChatRefusal(ChatWith(fields));
    EXPECT_EQ(e.status(), 400) << fields;
    EXPECT_EQ(e.param(), param) << fields;
    EXPECT_NE(std::string(e.what()).find("not supported"), std::string::npos) << e.what();
  }
  EXPECT_NE(std::string(ChatRefusal(ChatWith({{"presence_penalty", 1}})).what()).find("repetition_penalty"),
            std::string::npos);
}

TEST(OpenAiApi, RefusesValuesOutOfRange) {
  const std::pair<json, std::string> cases[] = {
      {{{"temperature", -0.1}}, "temperature"},
      {{{"temperature", 2.5}}, "temperature"},
      {{{"temperature", "hot"}}, "temperature"},
      {{{"top_p", 1.5}}, "top_p"},
      {{{"top_k", -2}}, "top_k"},
      {{{"min_p", 2}}, "min_p"},
      {{{"repetition_penalty", 0}}, "repetition_penalty"},
      {{{"max_tokens", 0}}, "max_tokens"},
      {{{"max_tokens", 1.5}}, "max_tokens"},
      {{{"max_tokens", "10"}}, "max_tokens"},
      {{{"max_completion_tokens", -3}}, "max_completion_tokens"},
      {{{"seed", 0.5}}, "seed"},
      {{{"stream", "yes"}}, "stream"},
      {{{"stream_options", 1}}, "stream_options"},
      {{{"n", 0}}, "n"},
      {{{"stop", ""}}, "stop"},
      {{{"stop", json::array({"a", "b", "c", "d", "e"})}}, "stop"},
      {{{"stop", json::array({1})}}, "stop"},
      {{{"model", 3}}, "model"},
      {{{"presence_penalty", 3}}, "presence_penalty"},
  };
  for (const auto& [fields, param] : cases) {
    const ApiError e = ChatRefusal(ChatWith(fields));
    EXPECT_EQ(e.status(), 400) << fields;
    EXPECT_EQ(e.param(), param) << fields;
    EXPECT_NE(std::string(e.what()).find(param), std::string::npos) << e.what();
  }
}

// --- completions --------------------------------------------------------------------------

TEST(OpenAiApi, ParsesACompletionRequest) {
  const CompletionRequest r = ParseCompletionRequest(R"({"model": "m", "prompt": "Once", "max_tokens": 4,
                                                        "stop": ["."], "echo": false, "best_of": 1})");
  EXPECT_EQ(r.prompt, "Once");
  EXPECT_EQ(*r.sampling.max_tokens, 4u);
  EXPECT_EQ(r.sampling.stop, std::vector<std::string>{"."});
  EXPECT_EQ(ParseCompletionRequest(R"({"prompt": ["one"]})").prompt, "one");
}

TEST(OpenAiApi, RefusesCompletionRequestsItCannotHonour) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({})", "prompt"},
      {R"({"prompt": 5})", "prompt"},
      {R"({"prompt": ["a", "b"]})", "prompt"},
      {R"({"prompt": [1, 2]})", "prompt"},
      {R"({"prompt": "a", "echo": true})", "echo"},
      {R"({"prompt": "a", "suffix": "z"})", "suffix"},
      {R"({"prompt": "a", "best_of": 2})", "best_of"},
      {R"({"prompt": "a", "logprobs": 2})", "logprobs"},
      {R"({"prompt": "a", "n": 3})", "n"},
  };
  for (const auto& [body, param] : cases) {
    const ApiError e = RefusalOf(ParseCompletionRequest, body);
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_EQ(e.param(), param) << body;
  }
}

// --- responses and chunks -----------------------------------------------------------------

const ResponseHeader kHeader{.id = "chatcmpl-1", .created = 1700000000, .model = "qwen"};

TEST(OpenAiApi, ChatCompletionHasOpenAisShape) {
  const json r =
      ChatCompletionJson(kHeader, "Hello", FinishReason::Length, {.prompt_tokens = 5, .completion_tokens = 2});
  EXPECT_EQ(r["id"], "chatcmpl-1");
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["created"], 1700000000);
  EXPECT_EQ(r["model"], "qwen");
  EXPECT_EQ(r["choices"][0]["index"], 0);
  EXPECT_EQ(r["choices"][0]["message"], json({{"role", "assistant"}, {"content", "Hello"}}));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"], json({{"prompt_tokens", 5}, {"completion_tokens", 2}, {"total_tokens", 7}}));
}

TEST(OpenAiApi, ChatChunksCarryRoleThenContentThenTheFinishReason) {
  const json first = ChatChunkJson(kHeader, "assistant", "", std::nullopt);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  const json middle = ChatChunkJson(kHeader, std::nullopt, "lo", std::nullopt);
  EXPECT_EQ(middle["choices"][0]["delta"], json({{"content", "lo"}}));
  const json last = ChatChunkJson(kHeader, std::nullopt, std::nullopt, FinishReason::Stop);
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  const json usage = UsageChunkJson(kHeader, true, {.prompt_tokens = 1, .completion_tokens = 1});
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["total_tokens"], 2);
}

TEST(OpenAiApi, CompletionsHaveOpenAisShape) {
  const json r = CompletionJson(kHeader, "text", FinishReason::Stop, {.prompt_tokens = 1, .completion_tokens = 3});
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["choices"][0]["text"], "text");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  const json chunk = CompletionChunkJson(kHeader, "t", std::nullopt);
  EXPECT_EQ(chunk["object"], "text_completion");
  EXPECT_EQ(chunk["choices"][0]["text"], "t");
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
}

TEST(OpenAiApi, ModelListHasOpenAisShape) {
  const std::string ids[] = {"qwen"};
  EXPECT_EQ(ModelListJson(ids, 5), json::parse(R"({"object":"list","data":[{"id":"qwen","object":"model",
                                                    "created":5,"owned_by":"qwenvk"}]})"));
}

TEST(OpenAiApi, EventsAreDataLinesWithABlankLine) {
  EXPECT_EQ(SseEvent(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  // Text with newlines stays on one data line: JSON escapes them.
  EXPECT_EQ(SseEvent(json("x\ny")), "data: \"x\\ny\"\n\n");
  EXPECT_EQ(SseEvent(json(std::string("\xff"))), "data: \"\xEF\xBF\xBD\"\n\n");  // never throws mid-stream
}

// --- a client's side ----------------------------------------------------------------------

TEST(OpenAiApi, SseReaderFindsEventsInPiecesOfAnySize) {
  const std::string stream = SseEvent(ChatChunkJson(kHeader, "assistant", "", std::nullopt)) + ": a comment\n\n" +
                             SseEvent(ChatChunkJson(kHeader, std::nullopt, "Hi", std::nullopt)) +
                             SseEvent(ChatChunkJson(kHeader, std::nullopt, std::nullopt, FinishReason::Length)) +
                             std::string(kSseDone);
  for (size_t piece : {1u, 3u, 7u, 1000u}) {
    SseReader reader;
    std::vector<std::string> events;
    for (size_t at = 0; at < stream.size(); at += piece) {
      for (std::string& e : reader.Push(std::string_view(stream).substr(at, piece))) events.push_back(std::move(e));
    }
    ASSERT_EQ(events.size(), 4u) << piece;
    EXPECT_EQ(ParseChatChunk(events[0]).role, "assistant");
    EXPECT_EQ(ParseChatChunk(events[1]).content, "Hi");
    EXPECT_EQ(ParseChatChunk(events[2]).finish, FinishReason::Length);
    EXPECT_EQ(events[3], "[DONE]");
  }
  SseReader crlf;
  EXPECT_EQ(crlf.Push("data: one\r\ndata: two\r\n\r\n"), std::vector<std::string>{"one\ntwo"});

  // A server that never ends an event is stopped once it has sent more than any reply holds.
  SseReader endless;
  const std::string megabyte = "data: " + std::string(size_t{1} << 20, 'a');
  test::ExpectMentions(test::ErrorOf([&] {
                         for (uint64_t sent = 0; sent <= kMaxReplyBytes; sent += megabyte.size())
                           endless.Push(megabyte);
                       }),
                       {"without ending an event"});
}

TEST(OpenAiApi, ChunksReadBack) {
  const ChatChunk usage =
      ParseChatChunk(UsageChunkJson(kHeader, true, {.prompt_tokens = 3, .completion_tokens = 4}).dump());
  ASSERT_TRUE(usage.usage);
  EXPECT_EQ(usage.usage->completion_tokens, 4u);
  EXPECT_FALSE(usage.finish);
  try {
    ParseChatChunk(ErrorJson(ApiError(500, "the GPU fell over", "server_error")).dump());
    ADD_FAILURE() << "an error event read as a chunk";
  } catch (const ApiError& e) {
    EXPECT_STREQ(e.what(), "the GPU fell over");
  }
  EXPECT_THROW(ParseChatChunk("not json"), Error);
  EXPECT_THROW(ParseChatChunk("{\"id\": 1}"), Error);
}

// What a broken or hostile server sends the app: each a clear Error or a chunk, never another
// exception (nlohmann's type errors) or a crash (found by fuzz/openai_fuzz.cpp).
TEST(OpenAiApi, ChunksOfTheWrongShapeAreRefusedOrReadAsFarAsTheyGo) {
  const ChatChunk odd = ParseChatChunk(
      R"({"choices": [{"delta": {"role": 7, "content": "Hi"}, "finish_reason": 3}],
          "usage": {"prompt_tokens": "5", "completion_tokens": -2}})");
  EXPECT_EQ(odd.role, "");
  EXPECT_EQ(odd.content, "Hi");
  EXPECT_FALSE(odd.finish);
  ASSERT_TRUE(odd.usage);
  EXPECT_EQ(odd.usage->prompt_tokens, 0u);
  EXPECT_EQ(odd.usage->completion_tokens, 0u);
  EXPECT_EQ(ParseChatChunk(R"({"choices": [{"delta": "Hi"}]})").content, "");
  test::ExpectMentions(test::ErrorOf([] { ParseChatChunk(R"({"choices": [7]})"); }), {"choice is not an object"});

  // Nested a million deep: refused as it is parsed, before anything copies it level by level.
  const std::string deep =
      R"({"choices": [{"delta": )" + std::string(1'000'000, '[') + std::string(1'000'000, ']') + "}]}";
  test::ExpectMentions(test::ErrorOf([&] { ParseChatChunk(deep); }), {"not JSON"});
  const ApiError error = ApiErrorFromBody(502, R"({"error": )" + std::string(1'000'000, '{'));
  EXPECT_EQ(error.status(), 502);
  EXPECT_EQ(std::string(error.what()).size(), 200u);
  EXPECT_TRUE(ParseReplyJson(std::string(100, '[') + std::string(100, ']')).is_discarded());
}

// --- stop sequences -----------------------------------------------------------------------

TEST(OpenAiApi, StopScannerHoldsBackWhatMayStartAStop) {
  StopScanner scanner({"END", "\n\n"});
  EXPECT_EQ(scanner.Push("Hello E"), "Hello ");  // "E" may start "END"
  EXPECT_EQ(scanner.Push("x"), "Ex");
  EXPECT_EQ(scanner.Push(" and\n"), " and");
  EXPECT_EQ(scanner.Push("more EN"), "\nmore ");
  EXPECT_EQ(scanner.Push("D and after"), "");
  EXPECT_TRUE(scanner.stopped());
  EXPECT_EQ(scanner.Push("ignored"), "");
  EXPECT_EQ(scanner.Flush(), "");
}

TEST(OpenAiApi, StopScannerFindsTheEarliestStopAndFlushesAHeldTail) {
  StopScanner scanner({"bc", "ab"});
  EXPECT_EQ(scanner.Push("xabc"), "x");
  EXPECT_TRUE(scanner.stopped());
  StopScanner tail({"<end>"});
  EXPECT_EQ(tail.Push("done <e"), "done ");
  EXPECT_FALSE(tail.stopped());
  EXPECT_EQ(tail.Flush(), "<e");
  StopScanner none({});
  EXPECT_EQ(none.Push("anything"), "anything");
}

}  // namespace
}  // namespace qvk::server
