// Encodes a fixed set of texts with independent tokenizer implementations and writes
// the expected ids to tests/fixtures/tokenizer_reference.json:
//   - LLaMA-2 / LLaMA-3 tokenizer.json: transformers.js (a port of HF tokenizers)
//   - GPT-2 encoder.json + vocab.bpe: gpt-3-encoder (a port of OpenAI's encoder.py)
// Usage (from the repo root):
//   (cd scripts/tokenizer_reference && npm ci --ignore-scripts || npm install --ignore-scripts)
//   node scripts/tokenizer_reference/make_reference.mjs [data_dir]
import { PreTrainedTokenizer } from '@huggingface/transformers';
import gpt3 from 'gpt-3-encoder';
import fs from 'fs';
import path from 'path';

const dataDir = process.argv[2] || process.env.CC_DATA_DIR || '../shared/data';
const out = 'tests/fixtures/tokenizer_reference.json';

const texts = [
  'Hello world',
  ' Hello\n\nworld  ok',
  'The quick brown fox jumps over the lazy dog.',
  "I'm sure you'll see they've done it, didn't they? WE'LL SEE.",
  '   leading and trailing spaces   ',
  'tabs\tand\r\nwindows line ends\n',
  'Numbers: 1 12 123 1234 12345 3.14159 -42 1,000,000',
  'héllo wörld, naïve café, Ærøskøbing',
  '日本語のテキストと中文文本',
  'emoji 🤗🚀 and symbols ∑∫√ ← →',
  'code: for (int i = 0; i < n; ++i) { x[i] += y[i]; }',
  '<s> inside text </s> and <|begin_of_text|> and <|endoftext|>',
  'a\n\n\n\nb',
  '',
  ' ',
  '\n',
  'Ġ▁ literal marker characters',
];

// Lines of the real corpora (read at test time from the data folder, never copied).
const corpusLines = [
  ['text/wikitext-2-raw/wiki.test.raw', [1, 3, 4, 10, 25, 100, 250]],
];

// FNV-1a (64-bit) of the UTF-8 bytes of the space-joined ids: simple to recompute in C++.
function fnv1a64(ids) {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(ids.join(' '), 'utf8')) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

function readLines(rel) {
  return fs.readFileSync(path.join(dataDir, rel), 'utf8').split('\n');
}

function hfTokenizer(name) {
  const dir = path.join(dataDir, 'tokenizers', name);
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  return new PreTrainedTokenizer(json, config);
}

const encoders = {
  llama2: (t => ({ encode: s => t.encode(s, { add_special_tokens: true }), noSpecial: s => t.encode(s, { add_special_tokens: false }) }))(hfTokenizer('llama2')),
  llama3: (t => ({ encode: s => t.encode(s, { add_special_tokens: true }), noSpecial: s => t.encode(s, { add_special_tokens: false }) }))(hfTokenizer('llama3')),
  gpt2: { encode: s => gpt3.encode(s), noSpecial: s => gpt3.encode(s) },
};

const result = { generated_by: 'scripts/tokenizer_reference/make_reference.mjs', tokenizers: {} };
for (const [name, enc] of Object.entries(encoders)) {
  const cases = [];
  // gpt-3-encoder has no notion of special tokens: it encodes "<|endoftext|>" as text.
  for (const text of texts) {
    if (name === 'gpt2' && text.includes('<|endoftext|>')) continue;
    cases.push({ text, ids: enc.encode(text) });
  }
  for (const [file, lines] of corpusLines) {
    const all = readLines(file);
    for (const line of lines) cases.push({ file, line, ids: enc.encode(all[line - 1]) });
  }
  const wiki = fs.readFileSync(path.join(dataDir, 'text/wikitext-2-raw/wiki.test.gptq.txt'), 'utf8');
  const whole = enc.encode(wiki);
  result.tokenizers[name] = {
    cases,
    whole_file: { file: 'text/wikitext-2-raw/wiki.test.gptq.txt', count: whole.length, fnv1a64_of_space_joined_ids: fnv1a64(whole) },
  };
  console.error(`${name}: ${cases.length} cases, whole file ${whole.length} tokens`);
}
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify(result, null, 1) + '\n');
console.error(`wrote ${out}`);
