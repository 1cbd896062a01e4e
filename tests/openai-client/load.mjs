// Load: 8 clients at once send 200 requests in all to `qwenvk serve --parallel 4`: streamed greedy
// chats, clients that go away mid-stream, and malformed requests. Every good request must be
// answered completely and with the text it gets alone, every bad one refused in OpenAI's error
// shape, the server must stay up and stop cleanly, and its resident memory at the end must be
// within RSS_MARGIN_KIB of what it was after the first 20 requests (warm: every slot and the
// connection threads in use).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { startServer } from './server.mjs';

const CLIENTS = 8;
const REQUESTS = 200;
const BASELINE_AFTER = 20;
const MAX_TOKENS = 6;
// Allocator slack and the stacks of connection threads used for the first time late in the run;
// a leak of a reply's text or a job per request (200 of them) would pass it.
const RSS_MARGIN_KIB = 8 * 1024;

const server = await startServer(['--parallel', '4', '--context', '256']);
const client = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0 });
const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))[1]);

const prompts = ['Hello', 'Name a colour', 'Count to five', 'What is a GPU?', 'Tell me a joke'];
const chat = (i) => ({
  model: 'qwen2-tiny',
  temperature: 0,
  max_tokens: MAX_TOKENS,
  messages: [{ role: 'user', content: prompts[i % prompts.length] }],
});

// Each prompt's greedy reply alone, before any load.
const expected = [];
for (let i = 0; i < prompts.length; i++) {
  expected.push((await client.chat.completions.create(chat(i))).choices[0].message.content);
}

async function good(i) {
  const stream = await client.chat.completions.create({ ...chat(i), stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
    usage = chunk.usage ?? usage;
  }
  assert.equal(text, expected[i % prompts.length], `request ${i}`);
  assert.ok(finish === 'stop' || finish === 'length', `request ${i}: finish ${finish}`);
  assert.ok(usage && usage.completion_tokens > 0 && usage.completion_tokens <= MAX_TOKENS, `request ${i}`);
}

async function goesAway(i) {
  const controller = new AbortController();
  const stream = await client.chat.completions.create(
    { ...chat(i), max_tokens: 200, stream: true },
    { signal: controller.signal });
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta.content) {
      controller.abort();
      break;
    }
  }
}

const malformedBodies = ['{', '{"messages": [{"role": "user"}]}', '{"messages": [{"role": "user", "content": "x"}], "n": 2}',
  '[]', '\u00ff\u00fe', JSON.stringify({ messages: [{ role: 'user', content: 'x' }], max_tokens: -1 })];

async function malformed(i) {
  const body = malformedBodies[i % malformedBodies.length];
  const response = await fetch(`${server.baseURL}/chat/completions`, { method: 'POST', body });
  assert.equal(response.status, 400, `request ${i}: ${body}`);
  const error = (await response.json()).error;
  assert.ok(typeof error.message === 'string' && typeof error.type === 'string', `request ${i}`);
}

let next = 0;
let finished = 0;
let baseline = 0;
const counts = { good: 0, goesAway: 0, malformed: 0 };
async function worker() {
  for (let i = next++; i < REQUESTS; i = next++) {
    const kind = i % 10 < 6 ? 'good' : i % 10 < 8 ? 'goesAway' : 'malformed';
    await { good, goesAway, malformed }[kind](i);
    counts[kind]++;
    if (++finished === BASELINE_AFTER) baseline = rssKiB();
  }
}

try {
  await Promise.all(Array.from({ length: CLIENTS }, worker));
  const end = rssKiB();
  console.log(`requests ${JSON.stringify(counts)}; RSS after ${BASELINE_AFTER}: ${baseline} KiB, at the end: ${end} KiB`);
  assert.equal(counts.good + counts.goesAway + counts.malformed, REQUESTS);
  assert.ok(end <= baseline + RSS_MARGIN_KIB, `RSS grew from ${baseline} KiB to ${end} KiB`);
  assert.equal((await (await fetch(`${server.origin}/health`)).json()).status, 'ok');
} finally {
  const status = await server.stop();
  if (status !== 0) console.error(server.log());
  assert.equal(status, 0, 'the server did not stop cleanly');
}
