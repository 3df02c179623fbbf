// Regenerates tests/data/expected/corpora_<tokenizer>.json: per corpus, for each block of 256
// texts, the number of ids and a 64-bit FNV-1a hash of them, from the JS reference tokenizer
// (transformers.js fork @lenml/tokenizers 3.7.2), never from hone.
//
//   mkdir -p /tmp/jsref && cd /tmp/jsref && npm install @lenml/tokenizers@3.7.2
//   NODE_PATH=/tmp/jsref/node_modules node tests/data/expected/make_expected.mjs ../shared [tok] [--dump corpus block]
//
// Texts: tinyshakespeare and origin_of_species are split on "\n" (the piece after the last
// newline is a text too, possibly empty); gsm8k gives each record's question, then its answer.
// Every text is encoded without special tokens. Hash: FNV-1a 64 over, per text, each id as 4
// little-endian bytes followed by the 4 bytes ff ff ff ff (so text boundaries count).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
const require = createRequire(path.join(process.env.NODE_PATH || "/tmp/jsref/node_modules", "x.js"));
const { TokenizerLoader } = require("@lenml/tokenizers");

const shared = process.argv[2] || "../shared";
const only = process.argv[3] && !process.argv[3].startsWith("--") ? process.argv[3] : null;
const dumpAt = process.argv.indexOf("--dump");
const BLOCK = 256;

export function corpusTexts(shared) {
  const read = (p) => fs.readFileSync(path.join(shared, p), "utf8");
  const gsm = [];
  for (const line of read("corpora/gsm8k/train.jsonl").split("\n")) {
    if (!line.trim()) continue;
    const r = JSON.parse(line);
    gsm.push(r.question, r.answer);
  }
  return {
    tinyshakespeare: read("corpora/tinyshakespeare/input.txt").split("\n"),
    origin_of_species: read("corpora/origin_of_species/pg1228.txt").split("\n"),
    gsm8k: gsm,
  };
}

const P = 0x100000001b3n, MASK = (1n << 64n) - 1n;
function fnvBytes(h, v) {
  for (let k = 0; k < 4; ++k) {
    h ^= BigInt((v >>> (8 * k)) & 0xff);
    h = (h * P) & MASK;
  }
  return h;
}

const corpora = corpusTexts(shared);
for (const name of only ? [only] : ["llama3", "qwen3", "mistral"]) {
  const dir = path.join(shared, "tokenizers", name);
  const tok = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
  });
  if (dumpAt > 0) {
    const texts = corpora[process.argv[dumpAt + 1]];
    const b = Number(process.argv[dumpAt + 2]);
    for (const t of texts.slice(b * BLOCK, (b + 1) * BLOCK))
      console.log(JSON.stringify(tok.encode(t, { add_special_tokens: false })));
    continue;
  }
  const out = { tokenizer: name, reference: "@lenml/tokenizers 3.7.2", block: BLOCK, corpora: {} };
  for (const [cname, texts] of Object.entries(corpora)) {
    const blocks = [];
    for (let b = 0; b * BLOCK < texts.length; ++b) {
      let h = 0xcbf29ce484222325n, n = 0;
      for (const t of texts.slice(b * BLOCK, (b + 1) * BLOCK)) {
        const ids = tok.encode(t, { add_special_tokens: false });
        n += ids.length;
        for (const id of ids) h = fnvBytes(h, id);
        h = fnvBytes(h, 0xffffffff);
      }
      blocks.push([n, h.toString(16).padStart(16, "0")]);
    }
    out.corpora[cname] = { texts: texts.length, blocks };
  }
  const file = path.join(path.dirname(new URL(import.meta.url).pathname), `corpora_${name}.json`);
  fs.writeFileSync(file, JSON.stringify(out) + "\n");
  console.error(`wrote ${file}`);
}
