// jetmoe serve through the official openai client: completions and chat,
// streaming and not, greedy results equal to `jetmoe generate`, concurrent
// streams independent of each other.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, generateGreedy, MODEL_ID, CHAT_TEMPLATE, metric } from './server_harness.mjs';

let server;
let client;
const greedyRefs = new Map();

const PROMPTS = ['In the beginning', 'And God said', 'The LORD is my shepherd', 'Blessed are the', 'And it came to pass',
  'Thou shalt not', 'For God so loved', 'Jesus wept', 'Let there be', 'And the earth was', 'Honour thy father',
  'The heavens declare', 'Behold, I stand', 'In my Father\'s house', 'Ask, and it shall', 'Vanity of vanities'];

before(async () => {
  // `jetmoe generate` runs synchronously, so it runs before any connection
  // exists: blocking the event loop for seconds between requests lets the
  // server close an idle keep-alive socket that the client then reuses.
  for (const prompt of PROMPTS.slice(0, 3)) greedyRefs.set(prompt, generateGreedy(prompt, 24));
  server = await startServer(['--max-batch', '16', '--chat-template', CHAT_TEMPLATE]);
  client = new OpenAI({ baseURL: `${server.base}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, 'the server exits 0 on SIGTERM');
});

async function streamText(params) {
  const stream = await client.completions.create({ ...params, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish };
}

test('GET /v1/models lists the served model', async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL_ID]);
  const m = await client.models.retrieve(MODEL_ID);
  assert.equal(m.id, MODEL_ID);
});

test('greedy completions equal jetmoe generate, streaming or not', async () => {
  for (const prompt of PROMPTS.slice(0, 3)) {
    const ref = greedyRefs.get(prompt);
    const r = await client.completions.create({ model: MODEL_ID, prompt, max_tokens: 24, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices[0].text, ref.generated_text, `prompt ${JSON.stringify(prompt)}`);
    assert.equal(r.usage.completion_tokens, ref.token_ids.length - r.usage.prompt_tokens);
    assert.equal(r.choices[0].finish_reason, ref.finish_reason === 'eos' ? 'stop' : 'length');
    const s = await streamText({ model: MODEL_ID, prompt, max_tokens: 24, temperature: 0 });
    assert.equal(s.text, ref.generated_text);
    assert.equal(s.finish, r.choices[0].finish_reason);
  }
});

test('chat completions apply the chat template, streaming or not', async () => {
  const messages = [{ role: 'system', content: 'Answer in the words of the King James Bible.' },
    { role: 'user', content: 'Who created the heaven and the earth?' }];
  const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 20, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.ok(r.usage.prompt_tokens > 20, 'the template wraps the messages');
  const stream = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 20, temperature: 0, stream: true,
    stream_options: { include_usage: true } });
  let text = '';
  let role = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      text += c.delta.content ?? '';
    }
  }
  assert.equal(role, 'assistant');
  assert.equal(text, r.choices[0].message.content);
  assert.deepEqual(usage, r.usage);
});

test('stop strings end the text before the stop, with finish_reason stop', async () => {
  const full = (await client.completions.create({ model: MODEL_ID, prompt: 'In the beginning', max_tokens: 30, temperature: 0 })).choices[0].text;
  const at = full.indexOf('earth', 3);
  assert.ok(at > 0, `the reference text has a second word to stop at: ${full}`);
  const r = await client.completions.create({ model: MODEL_ID, prompt: 'In the beginning', max_tokens: 30, temperature: 0, stop: ['earth', 'zzz'] });
  assert.equal(r.choices[0].text, full.slice(0, full.indexOf('earth')));
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = await streamText({ model: MODEL_ID, prompt: 'In the beginning', max_tokens: 30, temperature: 0, stop: 'earth' });
  assert.equal(s.text, r.choices[0].text);
  assert.equal(s.finish, 'stop');
  // A stop string that spans several tokens: no part of it may leak out,
  // streamed or not.
  const spanning = ', and the earth shall';
  assert.ok(full.indexOf(spanning) > 0, full);
  const r2 = await client.completions.create({ model: MODEL_ID, prompt: 'In the beginning', max_tokens: 30, temperature: 0, stop: spanning });
  assert.equal(r2.choices[0].text, full.slice(0, full.indexOf(spanning)));
  const s2 = await streamText({ model: MODEL_ID, prompt: 'In the beginning', max_tokens: 30, temperature: 0, stop: [spanning] });
  assert.equal(s2.text, r2.choices[0].text);
  assert.equal(s2.finish, 'stop');
});

test('sampling is reproducible for a seed; n returns independent choices', async () => {
  const params = { model: MODEL_ID, prompt: 'And God said', max_tokens: 16, temperature: 1.0, top_p: 0.9, seed: 1234, n: 3 };
  const a = await client.completions.create(params);
  const b = await client.completions.create(params);
  assert.equal(a.choices.length, 3);
  assert.deepEqual(a.choices.map((c) => c.text), b.choices.map((c) => c.text));
  assert.ok(new Set(a.choices.map((c) => c.text)).size > 1, 'choices differ from each other');
  assert.equal(a.usage.completion_tokens, 3 * 16, 'three choices of 16 tokens (EOS is rare this early)');
});

test('penalties change a greedy continuation that repeats itself', async () => {
  const base = { model: MODEL_ID, prompt: 'In the beginning', max_tokens: 24, temperature: 0 };
  const plain = (await client.completions.create(base)).choices[0].text;
  const penalised = (await client.completions.create({ ...base, frequency_penalty: 2.0, presence_penalty: 1.0 })).choices[0].text;
  assert.notEqual(penalised, plain);
});

test('logit_bias forces a token, greedy and sampled; logprobs stay the model\'s own', async () => {
  // Token 450 is "▁The": +100 outweighs any logit, so every token is it.
  const base = { model: MODEL_ID, prompt: 'In the beginning', max_tokens: 4, logit_bias: { 450: 100 }, logprobs: 1 };
  for (const temperature of [0, 1.0]) {
    const r = await client.completions.create({ ...base, temperature, seed: 7 });
    assert.equal(r.choices[0].text, ' The The The The', `temperature ${temperature}`);
    // The model itself does not expect "The" after "In the beginning": its
    // logprob, not the biased one (about 0), is reported.
    assert.ok(r.choices[0].logprobs.token_logprobs[0] < -0.1, `logprob ${r.choices[0].logprobs.token_logprobs[0]}`);
  }
});

test('logprobs: the chosen token and the top alternatives, best first', async () => {
  const r = await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'Who made light?' }],
    max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(t.logprob <= 0);
    // Greedy: the chosen token is the most likely one.
    assert.equal(t.top_logprobs[0].token, t.token);
    assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-6);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
  }
  const c = await client.completions.create({ model: MODEL_ID, prompt: 'Jesus wept', max_tokens: 4, temperature: 0, logprobs: 2 });
  assert.equal(c.choices[0].logprobs.tokens.length, 4);
  assert.equal(c.choices[0].logprobs.tokens.join(''), c.choices[0].text);
});

test('16 simultaneous streams each equal their single-request result', async () => {
  const single = [];
  for (const prompt of PROMPTS) {
    single.push((await client.completions.create({ model: MODEL_ID, prompt, max_tokens: 16, temperature: 0 })).choices[0].text);
  }
  const batchesBefore = await metric(server.base, 'jetmoe_batch_sequences_count');
  const concurrent = await Promise.all(PROMPTS.map((prompt) => streamText({ model: MODEL_ID, prompt, max_tokens: 16, temperature: 0 })));
  const passes = (await metric(server.base, 'jetmoe_batch_sequences_count')) - batchesBefore;
  assert.deepEqual(concurrent.map((c) => c.text), single);
  // 16 streams of 16 tokens alone would take 16 x 16 passes; sharing passes
  // is what continuous batching is for.
  assert.ok(passes < 16 * 16 / 2, `${passes} forward passes for 16 concurrent streams`);
});
