// Package data reads preference and SFT datasets, splits them into train and eval sets, inspects them, and turns
// rows into the token batches the model trains on.
//
// # Files
//
// A dataset is JSON Lines (one object a line; lines holding only whitespace are not rows) or one JSON array of
// objects. A leading UTF-8 byte-order mark is ignored. Each row is validated on its own: a bad row is reported with
// its 1-based line (for an array, the line where the element starts), the field and the reason, and the valid rows
// are kept; the caller decides whether invalid rows are fatal (Dataset.CheckInvalidRows applies a run's
// invalidRows policy: Reject, the default, or Skip). A syntax error
// inside a JSON array ends the array: it is reported as one invalid row that says the rest was not read.
//
// # Formats
//
// Preference formats (a Row with Prompt, Chosen and Rejected):
//   - standard: {"prompt": str, "chosen": str, "rejected": str}.
//   - implicitPrompt: {"chosen": str, "rejected": str}; the prompt is their longest common byte prefix, cut back
//     so that it never splits a UTF-8 character. Whitespace is kept exactly where the split falls (a space before
//     the first differing word stays at the end of the prompt), so Prompt+Chosen and Prompt+Rejected reproduce the
//     original texts byte for byte. Chosen and rejected may also be two message lists (TRL's conversational
//     implicit prompt): the prompt is their shared leading messages, each response the messages after them. In
//     both shapes one text may be a prefix of the other: that response is empty (the model learns to end the turn
//     there), which RowWarnings counts; identical sides are invalid.
//   - conversational: prompt, chosen and rejected are lists of {"role", "content"} messages.
//   - sharegpt: {"conversations": [{"from": "human"|"gpt"|"system", "value"}], "chosen": {"from": "gpt",
//     "value"}, "rejected": {...}}, with an optional top-level "system" string.
//   - chatPreference: {"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]},
//     the outputs being lists of assistant messages.
//
// SFT formats (a Row with Prompt and Chosen, the completion; Rejected is empty):
//   - promptCompletion: {"prompt": str, "completion": str}.
//   - messages: {"messages": [...]}; the last message must be the assistant's and is the completion.
//   - text: {"text": str}; the prompt is empty, so every byte is trained on.
//   - alpaca: {"instruction": str, "input": str (optional), "output": str}, optional "system": rendered as one
//     user turn holding the instruction, then a blank line and the input when the input is not empty.
//
// The format name "sft" means "whichever SFT format the file has". Any preference dataset also serves SFT (the
// prompt and the chosen response); Row does not care which kind of run reads it.
//
// PromptField, ChosenField and RejectedField rename the keys "prompt", "chosen" and "rejected" wherever a format
// uses them (standard, implicitPrompt, conversational, sharegpt's chosen/rejected, promptCompletion's prompt).
// Fields a format does not use are ignored.
//
// # Auto-detection
//
// With format auto (or empty), the format is chosen from the keys of the first row that is a JSON object with a
// known set of keys; every row is then read in that format, so rows of another shape become invalid rows.
//
// # Tool turns
//
// The built-in chat template has no tool syntax, so a message with tool_calls or function_call, a message in role
// tool/function/ipython, or a ShareGPT function_call/observation turn is an invalid row (naming the field) rather
// than a message rendered without its call or result.
//
// # Split
//
// Split holds out evalFraction of the rows, grouped by prompt, or by row (prompt and chosen text) when grouping by
// prompt cannot come within a tenth of the target; SplitResult.By says which (docs/data.md).
//
// # Chat template
//
// Conversational rows keep their messages (Row.Chat), which an Encoder renders with the model's chat template
// (or a run's override); Row's texts are the built-in template's rendering (BuiltinChatTemplate: each message is
// "<|role|>\n" + content, messages are separated by "\n", the prompt ends with "\n<|assistant|>\n"), which the
// split groups by and the report measures, and which models trained from scratch are trained on. The Encoder
// tokenizes prompt+response jointly, puts BOS and the turn's end exactly once and truncates once per pair (see
// Encoder and trainer/DESIGN.md).
package data
