// `qwenvk serve` under the official openai client (and raw HTTP where a client would never send
// such a request): every endpoint, streaming and not, refusals, authentication, greedy replies
// equal to `qwenvk generate --greedy`, a client that goes away mid-stream.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { generate, startServer } from './server.mjs';

const KEY = 'test-key';
const CONTEXT = 1024;
let server;
let client;

before(async () => {
  server = await startServer(['--api-key', KEY, '--parallel', '2', '--context', String(CONTEXT)]);
  client = new OpenAI({ baseURL: server.baseURL, apiKey: KEY, maxRetries: 0 });
});

after(async () => {
  assert.equal(await server.stop(), 0, `the server did not stop cleanly:\n${server.log()}`);
});

const MODEL = 'qwen2-tiny';
const greedy = { model: MODEL, temperature: 0, max_tokens: 12 };
const ask = (content) => [{ role: 'user', content }];

// A raw request: for bodies no client sends.
async function raw(method, path, { body, headers = {} } = {}) {
  const response = await fetch(server.origin + path, {
    method,
    body,
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json', ...headers },
  });
  return { status: response.status, headers: response.headers, json: await response.json() };
}

function assertErrorShape(body) {
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  assert.equal(typeof body.error.type, 'string');
  assert.ok('param' in body.error && 'code' in body.error, JSON.stringify(body));
}

// The API error a call ends with.
async function refusal(call) {
  try {
    await call();
  } catch (error) {
    assert.ok(error instanceof OpenAI.APIError, `not an API error: ${error}`);
    return error;
  }
  assert.fail('the request was accepted');
}

test('/v1/models lists the model', async () => {
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  assert.deepEqual(models.map((m) => m.id), [MODEL]);
  assert.equal(models[0].object, 'model');
  assert.equal((await client.models.retrieve(MODEL)).id, MODEL);
});

test('a chat completion, whole', async () => {
  const r = await client.chat.completions.create({ ...greedy, messages: ask('Hello') });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, MODEL);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('a chat completion streamed: role, content, finish reason, usage, and the same text as whole', async () => {
  const messages = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Name a colour.' },
    { role: 'assistant', content: 'Blue.' },
    { role: 'user', content: 'Another.' },
  ];
  const whole = await client.chat.completions.create({ ...greedy, messages });
  const stream = await client.chat.completions.create({
    ...greedy, messages, stream: true, stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const finishes = chunks.filter((c) => c.choices[0]?.finish_reason);
  assert.equal(finishes.length, 1);
  assert.equal(finishes[0].choices[0].finish_reason, whole.choices[0].finish_reason);
  const usage = chunks.at(-1);
  assert.deepEqual(usage.choices, []);
  assert.deepEqual(usage.usage, whole.usage);
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
  assert.equal(text, whole.choices[0].message.content);
});

test('greedy chat replies equal `qwenvk generate --greedy --chat`', async () => {
  const prompt = 'Write a haiku about GPUs';
  const expected = await generate(['--greedy', '--chat', '--prompt', prompt, '--max-tokens', '12']);
  const r = await client.chat.completions.create({ ...greedy, messages: ask(prompt) });
  assert.equal(r.choices[0].message.content, expected);
});

// top_p 0 (which OpenAI's API allows) keeps only the most likely token at every step: the greedy
// reply, drawn at temperature 1, and the server goes on serving.
test('top_p 0 replies as greedy decoding does', async () => {
  const messages = ask('Name three colours');
  const expected = (await client.chat.completions.create({ ...greedy, messages })).choices[0].message.content;
  const r = await client.chat.completions.create({ ...greedy, temperature: 1, top_p: 0, seed: 7, messages });
  assert.equal(r.choices[0].message.content, expected);
});

test('greedy completions equal `qwenvk generate --greedy`, whole and streamed', async () => {
  const prompt = 'The capital of France is';
  const expected = await generate(['--greedy', '--prompt', prompt, '--max-tokens', '12']);
  const r = await client.completions.create({ ...greedy, prompt });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, expected);
  assert.ok(r.usage.prompt_tokens > 0);
  const stream = await client.completions.create({ ...greedy, prompt, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    text += chunk.choices[0].text;
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(text, expected);
  assert.equal(finish, r.choices[0].finish_reason);
});

test('a stop sequence ends the reply before it, in whole and streamed replies', async () => {
  const messages = ask('Tell me a story');
  const full = (await client.chat.completions.create({ ...greedy, max_tokens: 24, messages })).choices[0].message
    .content;
  const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
  assert.ok(stop.length > 0, `the reply is too short to cut: ${JSON.stringify(full)}`);
  const cut = full.slice(0, full.indexOf(stop));
  const r = await client.chat.completions.create({ ...greedy, max_tokens: 24, messages, stop: [stop, '\u0000never'] });
  assert.equal(r.choices[0].message.content, cut);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const stream = await client.chat.completions.create({ ...greedy, max_tokens: 24, messages, stop, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  assert.equal(text, cut);
});

test('refusals are 400s in OpenAI\'s error shape, naming the field', async () => {
  const cases = [
    [{ n: 2 }, 'n'],
    [{ presence_penalty: 0.5 }, 'presence_penalty'],
    [{ temperature: 3 }, 'temperature'],
    [{ logprobs: true }, 'logprobs'],
    [{ tools: [{ type: 'function', function: { name: 'f' } }] }, 'tools'],
    [{ messages: [] }, 'messages'],
  ];
  for (const [fields, param] of cases) {
    const error = await refusal(() => client.chat.completions.create({ ...greedy, messages: ask('x'), ...fields }));
    assert.ok(error instanceof OpenAI.BadRequestError, `${JSON.stringify(fields)}: ${error.status}`);
    assert.equal(error.param, param);
    assert.equal(error.type, 'invalid_request_error');
  }
});

test('a prompt longer than the context is a 400 that says so', async () => {
  const error = await refusal(() =>
    client.chat.completions.create({ ...greedy, messages: ask('word '.repeat(CONTEXT * 2)) }));
  assert.equal(error.status, 400);
  assert.equal(error.code, 'context_length_exceeded');
  assert.match(error.message, /context is 1024 tokens/);
});

test('an unknown model is a 404', async () => {
  const error = await refusal(() => client.chat.completions.create({ ...greedy, model: 'gpt-4', messages: ask('x') }));
  assert.ok(error instanceof OpenAI.NotFoundError);
  assert.equal(error.code, 'model_not_found');
});

test('bad JSON, unknown paths and wrong methods get JSON errors', async () => {
  for (const body of ['{', 'null', '[]', '{"messages": "hi"}', '\u0000\u0001']) {
    const r = await raw('POST', '/v1/chat/completions', { body });
    assert.equal(r.status, 400, body);
    assertErrorShape(r.json);
  }
  const missing = await raw('GET', '/v1/nothing');
  assert.equal(missing.status, 404);
  assertErrorShape(missing.json);
  const wrong = await raw('GET', '/v1/chat/completions');
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get('allow'), 'POST');
  assertErrorShape(wrong.json);
});

test('a body over the limit is a 413, and the server goes on', async () => {
  const r = await raw('POST', '/v1/chat/completions', { body: 'x'.repeat(9 << 20) });
  assert.equal(r.status, 413);
  assert.equal(r.json.error.code, 'request_too_large');
  assertErrorShape(r.json);
  assert.equal((await raw('GET', '/health')).json.status, 'ok');
});

test('every request needs the API key', async () => {
  const stranger = new OpenAI({ baseURL: server.baseURL, apiKey: 'wrong', maxRetries: 0 });
  const error = await refusal(() => stranger.models.list());
  assert.ok(error instanceof OpenAI.AuthenticationError);
  assert.equal(error.code, 'invalid_api_key');
  for (const headers of [{ Authorization: '' }, { Authorization: `Bearer ${KEY}x` }, { Authorization: KEY }]) {
    const r = await raw('GET', '/health', { headers });
    assert.equal(r.status, 401, JSON.stringify(headers));
    assertErrorShape(r.json);
  }
  assert.equal((await raw('GET', '/health')).json.status, 'ok');
});

test('a client that goes away mid-stream frees its slot at once', async () => {
  const controller = new AbortController();
  // No max_tokens: the reply would run until the context is full.
  const stream = await client.chat.completions.create(
    { model: MODEL, temperature: 0, messages: ask('Go on and on'), stream: true },
    { signal: controller.signal });
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta.content) {
      controller.abort();
      break;
    }
  }
  // The server says so when it notices, long before the context would have filled.
  while (!/client went away after \d+ of \d+ tokens/.test(server.log())) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const [, made, limit] = /client went away after (\d+) of (\d+) tokens/.exec(server.log()).map(Number);
  assert.ok(made < limit, `${made} of ${limit}`);
  const after = await client.chat.completions.create({ ...greedy, messages: ask('Still there?') });
  assert.ok(after.usage.completion_tokens > 0);
});
