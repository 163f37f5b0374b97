// Starts `jetmoe serve` on a free loopback port and waits until /health says
// the model has loaded. Paths come from the environment CTest sets.
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const BIN = process.env.JETMOE_BIN ?? new URL('../../build/jetmoe', import.meta.url).pathname;
export const MODEL = process.env.JETMOE_MODEL ?? new URL('../../models/jetmoe-kjv-tiny', import.meta.url).pathname;
export const CHAT_TEMPLATE =
  process.env.JETMOE_CHAT_TEMPLATE ?? new URL('../data/chat_templates/zephyr.jinja', import.meta.url).pathname;
export const MODEL_ID = 'jetmoe-kjv-tiny';

export async function startServer(extraArgs = []) {
  const args = ['serve', '--model', MODEL, '--port', '0', '--threads', '2', ...extraArgs];
  const child = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 60000);
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = /listening on http:\/\/[^:]+:(\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; ++i) {
    const r = await fetch(`${base}/health`).catch(() => null);
    if (r && r.status === 200) break;
    if (i > 600) throw new Error(`server never became healthy: ${stderr}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  return {
    child,
    base,
    port,
    exited,
    stderr: () => stderr,
    rssKb: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]),
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

// `jetmoe generate`'s greedy continuation of `prompt` (the reference the
// server must reproduce).
export function generateGreedy(prompt, maxNewTokens) {
  const out = execFileSync(BIN, ['generate', '--model', MODEL, '--prompt', prompt, '--max-new-tokens', String(maxNewTokens),
    '--json', '--return-full-text', 'false'], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n')[0]);
}

export async function metric(base, name, headers = {}) {
  const text = await (await fetch(`${base}/metrics`, { headers })).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

// Raw HTTP, for requests a client library would never send.
export async function post(base, path, body, headers = {}) {
  const r = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: r.status, headers: r.headers, text, json };
}
