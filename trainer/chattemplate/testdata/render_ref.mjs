// render_ref.mjs renders chat templates with @huggingface/jinja, the reference the Go tests compare against.
//
// Usage: node render_ref.mjs JINJA_DIR < input.json > results.json
//   JINJA_DIR: the folder npm installed @huggingface/jinja into (hack/install-jinja-ref.sh prints it).
//   input.json: {"templates": ["...", ...], "cases": [{"template": index, "context": {...}}, ...]}; a context holds
//     the template's variables (messages, tools, add_generation_prompt, bos_token, eos_token, ...) with JSON key
//     order kept.
//   results.json: one entry per case, in order: {"output": "..."} or {"error": "the thrown message"}.
// @huggingface/jinja's Template tokenizes with lstrip_blocks and trim_blocks on and defines raise_exception (it
// throws its argument) and strftime_now, as transformers' apply_chat_template does.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node render_ref.mjs JINJA_DIR < input.json");
  process.exit(2);
}
const entry = path.join(dir, "node_modules", "@huggingface", "jinja", "dist", "index.js");
const { Template } = await import(pathToFileURL(entry).href);

const input = JSON.parse(readFileSync(0, "utf8"));
const compiled = input.templates.map((src) => {
  try {
    return { template: new Template(src) };
  } catch (e) {
    return { error: String(e && e.message !== undefined ? e.message : e) };
  }
});
const results = input.cases.map((c) => {
  const t = compiled[c.template];
  if (t.error !== undefined) {
    return { error: t.error };
  }
  try {
    return { output: t.template.render(c.context) };
  } catch (e) {
    return { error: String(e && e.message !== undefined ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(results));
