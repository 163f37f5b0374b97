// Aggregate decode throughput of jetmoe serve: one stream alone, then 8 at
// once (continuous batching shares each forward pass among them).
//   node bench/serve_throughput.mjs [--model DIR] [--tokens 256] [--temperature 0] [--top-p 1]
// Greedy by default; a temperature above 0 samples (seeded), through the
// server's top-p and sampling code.
// Fewer tokens make a single-stream run last only tens of milliseconds on the
// demo model, and its figure then swings by 2x from run to run.
import { startServer } from '../tests/server/server_harness.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
if (arg('--model')) process.env.JETMOE_MODEL = arg('--model');
const tokens = Number(arg('--tokens', '256'));
const temperature = Number(arg('--temperature', '0'));
const topP = Number(arg('--top-p', '1'));
const server = await startServer(['--max-batch', '8']);
const modelId = (await (await fetch(`${server.base}/v1/models`)).json()).data[0].id;

async function run(streams) {
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: streams }, (_, i) =>
    fetch(`${server.base}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: modelId, prompt: `And it came to pass ${i}`,
      max_tokens: tokens, temperature, top_p: topP, seed: i, logit_bias: { 2: -100 } }) }).then((r) => r.json())));
  const seconds = (performance.now() - t0) / 1000;
  const generated = results.reduce((n, r) => n + r.usage.completion_tokens, 0);
  return generated / seconds;
}

await run(1);  // warm-up
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const single = median([await run(1), await run(1), await run(1)]);
const eight = median([await run(8), await run(8), await run(8)]);
console.log(JSON.stringify({ single_stream_tokens_per_s: +single.toFixed(1), eight_streams_tokens_per_s: +eight.toFixed(1),
  speedup: +(eight / single).toFixed(2) }));
await server.stop();
