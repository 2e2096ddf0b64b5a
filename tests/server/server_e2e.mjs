// End-to-end tests of `dsrt serve` with the official `openai` npm client.
//
//   node server_e2e.mjs --dsrt BIN --plan PLAN --suite r1|tied|soak [--oracles DIR]
//
// Starts `dsrt serve PLAN --port 0` on 127.0.0.1 (the port is read from its
// "listening on" line), runs the suite, then stops it with SIGTERM and checks a
// clean exit. Every wait is bounded; any failure exits 1.
import { spawn, execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createRequire } from 'node:module';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const oracles = args.oracles ?? path.resolve(path.dirname(new URL(import.meta.url).pathname), '../oracles/node_modules');
const require = createRequire(path.join(oracles, 'noop.js'));
const OpenAI = require('openai').default ?? require('openai');

const API_KEY = 'sk-e2e-test';
const TEST_TIMEOUT_MS = 120_000;

// ---- server process -----------------------------------------------------------

async function startServer(extra) {
  const argv = ['serve', args.plan, '--host', '127.0.0.1', '--port', '0', '--log-level', 'warning', ...extra];
  const proc = spawn(args.dsrt, argv, { stdio: ['ignore', 'inherit', 'pipe'] });
  let stderr = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s:\n${stderr}`)), 60_000);
    proc.stderr.on('data', (d) => {
      stderr += d.toString();
      const m = stderr.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}):\n${stderr}`)); });
  });
  proc.stderr.on('data', (d) => process.stderr.write(d));
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return { proc, port, exited, base: `http://127.0.0.1:${port}` };
}

async function stopServer(server) {
  const exited = server.exited;
  if (server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGTERM');
  const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 30_000));
  const res = await Promise.race([exited, timeout]);
  if (res === null) { server.proc.kill('SIGKILL'); throw new Error('server did not stop within 30 s of SIGTERM'); }
  assert.equal(res.code, 0, `server exit code ${res.code} signal ${res.signal}`);
}

// ---- helpers --------------------------------------------------------------------

let S;  // current server
let client;
const auth = () => ({ Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' });

async function post(route, body, headers = auth()) {
  const r = await fetch(S.base + route, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}

async function metrics() {
  const r = await fetch(S.base + '/metrics', { headers: auth() });
  assert.equal(r.status, 200);
  const out = {};
  for (const line of (await r.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

async function waitFor(pred, what, ms = 30_000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await pred();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function idle() {
  return waitFor(async () => {
    const m = await metrics();
    return m['dsrt:num_requests_running'] === 0 && m['dsrt:num_requests_waiting'] === 0 &&
      m['dsrt:kv_cache_pages_used'] === 0 && m['dsrt:http_requests_in_flight'] === 0 ? m : null;
  }, 'running = waiting = KV pages used = 0');
}

async function tokenizeMessages(messages) {
  const r = await post('/tokenize', { messages, add_generation_prompt: true });
  assert.equal(r.status, 200, r.text);
  return r.json.tokens;
}

function dsrtGenerate(ids, maxNew) {
  const out = execFileSync(args.dsrt, ['generate', args.plan, '--prompt-ids', ids.join(','), '--max-new-tokens',
    String(maxNew), '--temperature', '0', '--ignore-eos', '--json'], { encoding: 'utf8', timeout: 120_000 });
  return JSON.parse(out).output_ids;
}

async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

function assertUsage(u) {
  assert.ok(Number.isInteger(u.prompt_tokens) && u.prompt_tokens > 0, JSON.stringify(u));
  assert.ok(Number.isInteger(u.completion_tokens));
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  assert.ok(Number.isInteger(u.prompt_tokens_details.cached_tokens));
}

function assertErrorShape(r, status, param) {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json && r.json.error, r.text);
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok(r.json.error.message.length > 0);
  assert.equal(typeof r.json.error.type, 'string');
  assert.ok('param' in r.json.error && 'code' in r.json.error);
  if (param !== undefined) assert.equal(r.json.error.param, param, r.text);
}

const USER = [{ role: 'user', content: 'What is 2 + 3? Answer briefly.' }];

// ---- suites ------------------------------------------------------------------------

const common = {
  async 'auth: 401 without or with a wrong key, /health open'() {
    let r = await fetch(S.base + '/v1/models');
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error.code, 'invalid_api_key');
    r = await fetch(S.base + '/v1/models', { headers: { Authorization: 'Bearer nope' } });
    assert.equal(r.status, 401);
    r = await fetch(S.base + '/metrics');
    assert.equal(r.status, 401);
    r = await fetch(S.base + '/v1/chat/completions', { method: 'POST', body: '{}' });
    assert.equal(r.status, 401);
    r = await fetch(S.base + '/health');
    assert.equal(r.status, 200);
    const bad = new OpenAI({ baseURL: S.base + '/v1', apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e) => e.status === 401);
  },

  async 'models list'() {
    const list = await client.models.list();
    assert.equal(list.data.length, 1);
    assert.equal(list.data[0].id, 'e2e-model');
    assert.equal(list.data[0].object, 'model');
  },

  async 'tokenize / detokenize'() {
    let r = await post('/tokenize', { prompt: 'Hello world', add_special_tokens: false });
    assert.equal(r.status, 200);
    assert.equal(r.json.count, r.json.tokens.length);
    assert.ok(r.json.max_model_len > 0);
    const d = await post('/detokenize', { tokens: r.json.tokens });
    assert.equal(d.status, 200);
    assert.equal(d.json.prompt, 'Hello world');
    assertErrorShape(await post('/detokenize', { tokens: [-1] }), 400, 'tokens');
    assertErrorShape(await post('/detokenize', { tokens: 'x' }), 400, 'tokens');
    assertErrorShape(await post('/tokenize', { prompt: 5 }), 400, 'prompt');
    assertErrorShape(await post('/tokenize', { messages: [] }), 400, 'messages');
  },

  async 'chat: non-stream shape and usage'() {
    const ids = await tokenizeMessages(USER);
    const r = await client.chat.completions.create({ model: 'e2e-model', messages: USER, max_tokens: 8, temperature: 0 });
    assert.ok(r.id.startsWith('chatcmpl-'));
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, 'e2e-model');
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].index, 0);
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
    assertUsage(r.usage);
    assert.equal(r.usage.prompt_tokens, ids.length);
    assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 8);
    if (r.choices[0].finish_reason === 'length') assert.equal(r.usage.completion_tokens, 8);
  },

  async 'completions: stream equals non-stream, include_usage'() {
    const req = { model: 'e2e-model', prompt: 'The capital of France is', max_tokens: 12, temperature: 0, ignore_eos: true };
    const full = await client.completions.create(req);
    assert.equal(full.object, 'text_completion');
    assert.equal(full.choices[0].finish_reason, 'length');
    assert.equal(full.usage.completion_tokens, 12);
    const chunks = await collect(await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } }));
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assertUsage(last.usage);
    assert.equal(last.usage.completion_tokens, 12);
    assert.equal(last.usage.prompt_tokens, full.usage.prompt_tokens);
    let text = '';
    let finishes = 0;
    for (const c of chunks.slice(0, -1)) {
      assert.equal(c.object, 'text_completion');
      assert.equal(c.id, chunks[0].id);
      assert.equal(c.usage, null);
      text += c.choices[0].text;
      if (c.choices[0].finish_reason) { finishes += 1; assert.equal(c.choices[0].finish_reason, 'length'); }
    }
    assert.equal(finishes, 1);
    assert.equal(text, full.choices[0].text);
  },

  async 'completions: echo + logprobs'() {
    const prompt = 'One two three';
    const tok = await post('/tokenize', { prompt });
    const r = await client.completions.create({ model: 'e2e-model', prompt, max_tokens: 4, temperature: 0, ignore_eos: true, echo: true, logprobs: 2 });
    const c = r.choices[0];
    assert.ok(c.text.startsWith(prompt), c.text);
    const lp = c.logprobs;
    assert.equal(lp.tokens.length, tok.json.count + 4);
    assert.equal(lp.token_logprobs.length, lp.tokens.length);
    assert.equal(lp.token_logprobs[0], null);
    for (let i = 1; i < lp.tokens.length; i++) assert.ok(lp.token_logprobs[i] <= 0, `logprob ${i}`);
    for (let i = 1; i < lp.text_offset.length; i++) assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1]);
    for (let i = tok.json.count; i < lp.tokens.length; i++) {
      assert.ok(Object.keys(lp.top_logprobs[i]).length >= 1 && Object.keys(lp.top_logprobs[i]).length <= 3);
    }
  },

  async 'chat: logprobs / top_logprobs'() {
    const r = await client.chat.completions.create({ model: 'e2e-model', messages: USER, max_tokens: 5, temperature: 0,
      ignore_eos: true, logprobs: true, top_logprobs: 2 });
    const content = r.choices[0].logprobs.content;
    assert.equal(content.length, r.usage.completion_tokens);
    for (const e of content) {
      assert.equal(typeof e.token, 'string');
      assert.ok(e.logprob <= 0);
      assert.ok(Array.isArray(e.bytes));
      assert.equal(e.top_logprobs.length, 2);
      assert.ok(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob);
      assert.ok(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4, 'greedy picks the top token');
    }
    const chunks = await collect(await client.chat.completions.create({ model: 'e2e-model', messages: USER, max_tokens: 5,
      temperature: 0, ignore_eos: true, logprobs: true, top_logprobs: 2, stream: true }));
    const streamed = chunks.flatMap((c) => c.choices[0]?.logprobs?.content ?? []);
    assert.deepEqual(streamed.map((e) => e.token), content.map((e) => e.token));
  },

  async 'n > 1 and seed reproducibility'() {
    const req = { model: 'e2e-model', prompt: 'Once upon a time', max_tokens: 10, temperature: 1.0, n: 3, seed: 1234, ignore_eos: true };
    const a = await client.completions.create(req);
    assert.equal(a.choices.length, 3);
    assert.deepEqual(a.choices.map((c) => c.index).sort(), [0, 1, 2]);
    assert.equal(a.usage.completion_tokens, 30);
    const b = await client.completions.create(req);
    assert.deepEqual(b.choices.map((c) => c.text), a.choices.map((c) => c.text));
    const chunks = await collect(await client.completions.create({ ...req, stream: true }));
    const texts = ['', '', ''];
    for (const c of chunks) for (const ch of c.choices) texts[ch.index] += ch.text;
    assert.deepEqual(texts, a.choices.map((c) => c.text));
    const chat = await client.chat.completions.create({ model: 'e2e-model', messages: USER, max_tokens: 4, n: 2, seed: 7 });
    assert.equal(chat.choices.length, 2);
  },

  async 'stop strings never leak (stream and not)'() {
    const base = { model: 'e2e-model', prompt: 'Numbers: 1, 2, 3,', max_tokens: 24, temperature: 0, ignore_eos: true };
    const full = (await client.completions.create(base)).choices[0].text;
    assert.ok(full.length >= 6, `need some output, got ${JSON.stringify(full)}`);
    // A stop string from the middle of the output, likely spanning tokens.
    const start = Math.floor(full.length / 2) - 1;
    const stop = full.slice(start, start + 3);
    const expected = full.slice(0, full.indexOf(stop));
    const r = await client.completions.create({ ...base, stop: [stop, '\u0000never'] });
    assert.equal(r.choices[0].text, expected);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.choices[0].stop_reason, stop);
    const chunks = await collect(await client.completions.create({ ...base, stop, stream: true }));
    const text = chunks.map((c) => c.choices[0]?.text ?? '').join('');
    assert.equal(text, expected);
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
    const incl = await client.completions.create({ ...base, stop, include_stop_str_in_output: true });
    assert.equal(incl.choices[0].text, expected + stop);
  },

  async 'errors: 400 / 404 shapes, server keeps serving'() {
    assertErrorShape(await post('/v1/chat/completions', '{"messages": [', auth()), 400);
    assertErrorShape(await post('/v1/chat/completions', { messages: USER, temperature: 'hot' }), 400, 'temperature');
    assertErrorShape(await post('/v1/chat/completions', { messages: USER, top_p: 0 }), 400, 'top_p');
    assertErrorShape(await post('/v1/chat/completions', { messages: USER, n: 0 }), 400, 'n');
    assertErrorShape(await post('/v1/chat/completions', { messages: USER, max_tokens: -1 }), 400, 'max_tokens');
    assertErrorShape(await post('/v1/chat/completions', { messages: USER, stop: [1] }), 400, 'stop');
    assertErrorShape(await post('/v1/chat/completions', { messages: USER, top_logprobs: 50, logprobs: true }), 400, 'top_logprobs');
    assertErrorShape(await post('/v1/chat/completions', { messages: [] }), 400, 'messages');
    assertErrorShape(await post('/v1/chat/completions', { messages: 'hi' }), 400, 'messages');
    assertErrorShape(await post('/v1/chat/completions', { model: 'other', messages: USER }), 404);
    assertErrorShape(await post('/v1/completions', { prompt: 'x', max_tokens: 1e9 }), 400, 'max_tokens');
    const models = await client.models.list();
    const longIds = new Array(models.data[0].max_model_len).fill(10);
    assertErrorShape(await post('/v1/completions', { prompt: longIds, max_tokens: 1 }), 400, 'prompt');
    assertErrorShape(await post('/v1/completions', { prompt: [1, 2, 1e7] }), 400, 'prompt');
    assertErrorShape(await post('/v1/completions', { prompt: 'x', stream_options: { include_usage: true } }), 400, 'stream_options');
    const nf = await fetch(S.base + '/v1/nothing', { headers: auth() });
    assert.equal(nf.status, 404);
    assert.ok((await nf.json()).error.message.includes('/v1/nothing'));
    await assert.rejects(client.chat.completions.create({ model: 'e2e-model', messages: USER, temperature: -1 }), (e) => e.status === 400);
    const ok = await client.completions.create({ model: 'e2e-model', prompt: 'still alive', max_tokens: 2 });
    assert.equal(ok.choices.length, 1);
  },

  async 'prefix cache: a shared long prefix hits'() {
    const before = await metrics();
    const prefix = Array.from({ length: 300 }, (_, i) => 100 + (i % 500));
    const a = await client.completions.create({ model: 'e2e-model', prompt: [...prefix, 7, 8], max_tokens: 2, temperature: 0 });
    const b = await client.completions.create({ model: 'e2e-model', prompt: [...prefix, 9, 10, 11], max_tokens: 2, temperature: 0 });
    const after = await metrics();
    assert.ok(after['dsrt:prefix_cache_hits_total'] - before['dsrt:prefix_cache_hits_total'] >= 256,
      `hits ${before['dsrt:prefix_cache_hits_total']} -> ${after['dsrt:prefix_cache_hits_total']}`);
    assert.ok(after['dsrt:prefix_cache_hit_rate'] > 0);
    assert.ok(b.usage.prompt_tokens_details.cached_tokens >= 256, JSON.stringify(b.usage));
    assert.equal(a.usage.prompt_tokens, 302);
  },

  async 'client disconnect aborts the request'() {
    const controller = new AbortController();
    const stream = await client.completions.create({ model: 'e2e-model', prompt: 'Count forever:', max_tokens: 1500,
      ignore_eos: true, stream: true }, { signal: controller.signal });
    const m0 = await metrics();
    const before = m0['dsrt:request_success_total{finished_reason="abort"}'];
    let seen = 0;
    try {
      for await (const c of stream) { seen += 1; if (seen === 3) controller.abort(); }
    } catch { /* the client reports the abort as an error (or ends the stream) */ }
    assert.ok(seen >= 3 && seen < 100, `saw ${seen} chunks`);
    const m = await idle();
    assert.equal(m['dsrt:request_success_total{finished_reason="abort"}'], before + 1);
    const generated = m['dsrt:generation_tokens_total'] - m0['dsrt:generation_tokens_total'];
    assert.ok(generated < 1500, `the aborted request generated ${generated} tokens`);
  },

  async 'client disconnect aborts a non-streaming request'() {
    const m0 = await idle();
    const before = m0['dsrt:request_success_total{finished_reason="abort"}'];
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 150);  // long before 2000 tokens are generated
    await assert.rejects(client.completions.create({ model: 'e2e-model', prompt: 'Count forever:', max_tokens: 2000,
      ignore_eos: true, temperature: 0 }, { signal: controller.signal, maxRetries: 0 }));
    const m = await idle();
    assert.equal(m['dsrt:request_success_total{finished_reason="abort"}'], before + 1);
    const generated = m['dsrt:generation_tokens_total'] - m0['dsrt:generation_tokens_total'];
    assert.ok(generated < 2000, `the aborted request generated ${generated} tokens`);
  },

  async 'metrics: histograms and counters'() {
    const m = await idle();
    for (const k of ['dsrt:time_to_first_token_seconds_count', 'dsrt:inter_token_latency_seconds_count',
      'dsrt:e2e_request_latency_seconds_count', 'dsrt:prompt_tokens_total', 'dsrt:generation_tokens_total']) {
      assert.ok(m[k] > 0, `${k} = ${m[k]}`);
    }
    assert.ok(m['dsrt:kv_cache_pages_total'] > 0);
    assert.equal(m['dsrt:kv_cache_usage_perc'], 0);
  },
};

const r1 = {
  async 'chat: no double BOS, greedy equals dsrt generate, reasoning split'() {
    const ids = await tokenizeMessages(USER);
    const bos = (await post('/tokenize', { prompt: '', add_special_tokens: true })).json.tokens[0];
    assert.equal(ids[0], bos);
    assert.notEqual(ids[1], bos);
    const want = dsrtGenerate(ids, 16);
    const raw = (await post('/detokenize', { tokens: want })).json.prompt;
    const r = await client.chat.completions.create({ model: 'e2e-model', messages: USER, max_tokens: 16, temperature: 0,
      ignore_eos: true, skip_special_tokens: false });
    const msg = r.choices[0].message;
    // deepseek_r1: text before </think> is reasoning, after it content; no </think>: all reasoning.
    let body = raw.startsWith('<think>') ? raw.slice('<think>'.length) : raw;
    const end = body.indexOf('</think>');
    const wantReasoning = end < 0 ? body : body.slice(0, end);
    const wantContent = end < 0 ? null : body.slice(end + '</think>'.length) || null;
    assert.equal(msg.reasoning_content ?? '', wantReasoning);
    assert.equal(msg.content, wantContent);
    const chunks = await collect(await client.chat.completions.create({ model: 'e2e-model', messages: USER, max_tokens: 16,
      temperature: 0, ignore_eos: true, skip_special_tokens: false, stream: true }));
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const reasoning = chunks.map((c) => c.choices[0]?.delta?.reasoning_content ?? '').join('');
    const content = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(reasoning, wantReasoning);
    assert.equal(content, wantContent ?? '');
  },
};

const tied = {
  async 'chat: greedy equals dsrt generate on the rendered prompt'() {
    const ids = await tokenizeMessages(USER);
    const want = dsrtGenerate(ids, 16);
    const text = (await post('/detokenize', { tokens: want })).json.prompt;
    const r = await client.chat.completions.create({ model: 'e2e-model', messages: USER, max_tokens: 16, temperature: 0,
      ignore_eos: true, skip_special_tokens: false });
    assert.equal(r.choices[0].message.content, text);
    assert.equal(r.choices[0].message.reasoning_content, undefined);
    assert.equal(r.usage.prompt_tokens, ids.length);
    const chunks = await collect(await client.chat.completions.create({ model: 'e2e-model', messages: USER, max_tokens: 16,
      temperature: 0, ignore_eos: true, skip_special_tokens: false, stream: true, stream_options: { include_usage: true } }));
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), text);
    assert.equal(chunks.at(-1).usage.completion_tokens, 16);
  },
};

const soak = {
  async 'soak: 200 concurrent streams, 20% disconnect, KV returns to zero'() {
    const N = 200;
    let rng = 12345;
    const rand = () => ((rng = (rng * 1103515245 + 12345) % 2147483648) / 2147483648);
    const jobs = [];
    for (let i = 0; i < N; i++) {
      const disconnect = rand() < 0.2;
      const afterChunks = 1 + Math.floor(rand() * 4);
      jobs.push((async () => {
        const controller = new AbortController();
        const stream = await client.chat.completions.create({ model: 'e2e-model', max_tokens: 12, ignore_eos: true,
          messages: [{ role: 'user', content: `Request ${i}: say something.` }], temperature: 0.8, seed: i, stream: true,
          stream_options: { include_usage: true } }, { signal: controller.signal });
        let chunks = 0;
        let finish = null;
        let usage = null;
        try {
          for await (const c of stream) {
            chunks += 1;
            if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
            if (c.usage) usage = c.usage;
            if (disconnect && chunks === afterChunks) controller.abort();
          }
        } catch (e) {
          if (!disconnect) throw e;
          return 'aborted';
        }
        if (disconnect && chunks >= afterChunks) return 'aborted';
        assert.equal(finish, 'length', `request ${i}`);
        assert.equal(usage.completion_tokens, 12, `request ${i}`);
        return 'done';
      })());
    }
    const m0 = await metrics();
    const results = await Promise.all(jobs);
    const done = results.filter((r) => r === 'done').length;
    assert.ok(done >= 120, `only ${done} of ${N} completed`);
    const m = await idle();
    assert.equal(m['dsrt:kv_cache_usage_perc'], 0);
    // Every request ended either by its length limit or by the client's disconnect.
    const ended = (k) => m[`dsrt:request_success_total{finished_reason="${k}"}`] - m0[`dsrt:request_success_total{finished_reason="${k}"}`];
    assert.equal(ended('length') + ended('abort'), N);
    assert.ok(ended('length') >= done, `${ended('length')} finished by length, ${done} completed`);
    assert.ok(ended('abort') >= 1, 'no disconnect reached the server');
    const ok = await client.completions.create({ model: 'e2e-model', prompt: 'after the soak', max_tokens: 2 });
    assert.equal(ok.choices.length, 1);
  },

  async 'SIGTERM while streaming: the stream ends with abort, the server exits 0'() {
    const stream = await client.completions.create({ model: 'e2e-model', prompt: 'Long story:', max_tokens: 1900,
      ignore_eos: true, stream: true });
    let chunks = 0;
    let finish = null;
    for await (const c of stream) {
      chunks += 1;
      if (chunks === 2) S.proc.kill('SIGTERM');
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    }
    assert.equal(finish, 'abort');
    const res = await Promise.race([S.exited, new Promise((r) => setTimeout(() => r(null), 30_000))]);
    assert.ok(res !== null, 'server still running 30 s after SIGTERM');
    assert.equal(res.code, 0);
  },
};

// ---- main ---------------------------------------------------------------------------

const suites = { r1: [['--reasoning-parser', 'deepseek_r1'], { ...common, ...r1 }],
  tied: [[], { ...common, ...tied }], soak: [['--max-running-requests', '64'], soak] };
const [extraFlags, tests] = suites[args.suite] ?? (() => { throw new Error(`unknown --suite ${args.suite}`); })();

let failed = 0;
S = await startServer(['--api-key', API_KEY, '--served-model-name', 'e2e-model', ...extraFlags]);
client = new OpenAI({ baseURL: S.base + '/v1', apiKey: API_KEY, maxRetries: 0, timeout: TEST_TIMEOUT_MS });
try {
  for (const [name, fn] of Object.entries(tests)) {
    const t0 = Date.now();
    try {
      await Promise.race([fn(), new Promise((_, rej) => setTimeout(() => rej(new Error('test timed out')), TEST_TIMEOUT_MS))]);
      console.log(`ok    ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL  ${name}: ${e.stack ?? e}`);
    }
  }
} finally {
  try {
    await stopServer(S);
    console.log('ok    graceful shutdown on SIGTERM');
  } catch (e) {
    failed += 1;
    console.log(`FAIL  shutdown: ${e}`);
  }
}
console.log(failed ? `${failed} failed` : 'all passed');
process.exit(failed ? 1 : 0);
