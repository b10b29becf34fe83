// Package chattemplate renders Hugging Face chat templates (the `chat_template` of a model's tokenizer_config.json)
// as transformers' apply_chat_template(messages, tokenize=False) renders them, splits a conversation into prompt and
// response text for training, and lists a template's control markers.
//
// # Engine
//
// Templates run on github.com/ardanlabs/jinja v1.8.0 (Apache-2.0, pure Go), a Jinja engine written for chat
// templates. v1.9.0 and newer need Go 1.27 (the module is on 1.26.8); gonja v2 failed to parse Gemma-3's template
// and panicked the process on `"%s" % x` (measurements in ../shared/notes/tokenizers.md).
//
// The configuration follows transformers (chat_template_utils.py): trim_blocks and lstrip_blocks on (the engine's
// only mode), loop controls, and these template variables:
//   - messages: the Message values, dicts whose keys keep their order (see Object);
//   - tools, documents: the lists given, or None when not given;
//   - add_generation_prompt;
//   - the tokenizer's special tokens (bos_token, eos_token, ...; Compile's specialTokens), and any further keyword
//     arguments (RenderOptions.Vars, e.g. enable_thinking);
//   - raise_exception(message): stops rendering with a *RaiseError carrying the template's message;
//   - strftime_now(format): the time now (RenderOptions.Now, default time.Now) in Python's strftime format.
//
// Where the engine departs from Python's Jinja2, this package corrects it in its own code, by rewriting the template
// before compiling it (the engine has no hook for filters or printing):
//   - `| tojson` calls our filter, which is transformers' json.dumps(x, ensure_ascii=False, indent=None,
//     separators=None, sort_keys=False) with those arguments honoured: keys in order, ", " and ": " separators
//     (",", ": " with indent), indent=N laid out as Python does, floats as Python writes them (21.0, 1e-05). The
//     engine's own ignored key order under indent and wrote 21.0 as 21;
//   - every {{ expression }} prints Python's str() of its value (21.0, None, True, ['a'], {'k': 1}); the engine
//     printed 21, "" and JSON-like forms. The string and join filters print items the same way;
//   - round is Python's round (2.5 gives 2.0; the engine's gave 3);
//   - `'literal' % values` (printf-style formatting, with a tuple, a single value or a dict) calls our formatter;
//     the engine evaluated it as 0 without an error;
//   - a panic inside the engine comes back as an error.
//
// # Verified against
//
// The tests render the 11 real templates × 9 conversations of ../shared/testdata/chat-templates, 56 small templates
// that exercise one feature each, and 1,760 prompts and conversations of real preference pairs (../shared/data, the
// first 40 pairs of two files through the 11 templates), and compare every rendering and every raised message with
// @huggingface/jinja 0.5.11 (npm; installed pinned into bin/jinjaref by hack/install-jinja-ref.sh, skipped only
// without npm or node) and, when a python3 on PATH imports jinja2, with Python's Jinja2 configured as transformers
// configures it (testdata/render_ref.py). All the real cases (99 and 1,760) are identical with both. The
// differences left on the feature cases are listed in the tests with their reasons:
//   - with Python's Jinja2 (the engine evaluates these itself): str.title() leaves the rest of each word as it is;
//     a string and a dict are not `sequence`s and true is not a `number`; ** always gives a float (1024.0);
//     `~ none` writes "" (Python: None); string literals keep \u and \x escapes undecoded; a filter binds tighter
//     than a unary minus (-2|abs is -2). No real template we know relies on these;
//   - with @huggingface/jinja, where it departs from Python's Jinja2 and we follow Python: printing booleans, lists,
//     dicts and None; floats in tojson (2.0 as 2); no `%` formatting, no `float` test, fewer strftime directives.
//
// Not supported: a formatting string held in a variable (`fmt % x` renders 0, as the engine computes it), `{%
// generation %}` blocks (accepted and ignored: assistant masks come from RenderPromptResponse's split), and
// transformers' continue_final_message.
//
// # Prompt and response
//
// RenderPromptResponse renders the prompt messages with add_generation_prompt=true and prompt+response with false,
// and returns the prompt text and what the full rendering adds after it; a template that does not render the
// prompt as a prefix is a *PrefixError. Templates differ in what the response holds: the original Llama-3 template
// writes the assistant header whatever add_generation_prompt says, so its response ends with the opening of a next
// assistant turn; Qwen3 writes an empty <think></think> block into the response (or into the prompt with
// enable_thinking=false).
package chattemplate
