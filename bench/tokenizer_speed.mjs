// The JS reference side of bench/tokenizer.sh: @lenml/tokenizers (transformers.js) encoding the
// same file, same protocol and output as bench/tokenizer_speed.cpp.
//   NODE_PATH=<dir>/node_modules node bench/tokenizer_speed.mjs TOKENIZER_DIR TEXT_FILE [REPEATS]
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
const require = createRequire(path.join(process.env.NODE_PATH || "/tmp/jsref/node_modules", "x.js"));
const { TokenizerLoader } = require("@lenml/tokenizers");

const [dir, file, rep] = process.argv.slice(2);
const repeats = rep ? Number(rep) : 5;
const text = fs.readFileSync(file, "utf8");
const bytes = fs.statSync(file).size;
let t0 = performance.now();
const tok = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
  tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
});
const load = (performance.now() - t0) / 1000;
let cold = 0, best = Infinity, ids = [];
for (let r = 0; r <= repeats; ++r) {
  t0 = performance.now();
  ids = tok.encode(text, { add_special_tokens: false });
  const s = (performance.now() - t0) / 1000;
  if (r === 0) cold = s; else best = Math.min(best, s);
}
const P = 0x100000001b3n, MASK = (1n << 64n) - 1n;
let h = 0xcbf29ce484222325n;
for (const id of ids) for (let k = 0; k < 4; ++k) { h ^= BigInt((id >>> (8 * k)) & 0xff); h = (h * P) & MASK; }
const mb = bytes / 1e6;
console.log(JSON.stringify({ impl: "transformers.js (@lenml/tokenizers 3.7.2)", bytes, ids: ids.length,
  fnv: h.toString(16).padStart(16, "0"), load_s: +load.toFixed(3), cold_mb_s: +(mb / cold).toFixed(2),
  warm_mb_s: repeats > 0 ? +(mb / best).toFixed(2) : 0 }));
