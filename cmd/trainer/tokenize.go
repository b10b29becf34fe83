package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/data"
	"github.com/preftune/preftune/trainer/tokenizer"
)

func init() {
	register("tokenize", "print the ids and pieces of the text on stdin with a model's tokenizer: --model dir",
		func(args []string) int { return tokenizeCmd(args, os.Stdin, os.Stdout, os.Stderr) })
}

// tokenizeOutput is --json's output.
type tokenizeOutput struct {
	IDs     []int    `json:"ids"`
	Pieces  []string `json:"pieces"`
	Decoded string   `json:"decoded"`
	Bytes   int      `json:"bytes"`
}

// tokenizeCmd encodes all of stdin as one text with the tokenizer of a model directory (a Hugging Face
// tokenizer.json with tokenizer_config.json, or the byte tokenizer's file) and prints, per token, its index, id,
// piece (the vocabulary string, e.g. "Ġthe" or "<0x0A>") and the text it decodes to alone, then a summary line
// saying whether decoding the ids gives the input back.
func tokenizeCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelDir := fs.String("model", "", "model directory holding tokenizer.json")
	special := fs.Bool("special", false, "add the special tokens tokenizer.json's post-processor adds (BOS for Llama-2, Gemma)")
	asJSON := fs.Bool("json", false, `print one JSON object {"ids", "pieces", "decoded", "bytes"} instead of a table`)
	chat := fs.Bool("chat", false, "tokenize stdin as a training prompt: one user message rendered with the chat template a run "+
		"would use (--chat-template, else the model's, else the built-in one; stderr says which) with add_generation_prompt, "+
		"BOS once as training puts it (add_bos_token false: only a BOS the template writes); prints the rendering to stderr. "+
		"The ids equal the prompt ids training gives a row with that message; --special adds nothing more")
	templateFile := fs.String("chat-template", "", "with --chat: render with the Jinja chat template in this file, as a run's "+
		"--chat-template does (an error without --chat)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return contract.ExitUsage
		}
		fmt.Fprintf(stderr, "preftune-trainer tokenize: %v\n", err)
		return contract.ExitUsage
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "preftune-trainer tokenize: unexpected argument %q (the text comes on stdin)\n", fs.Arg(0))
		return contract.ExitUsage
	case *modelDir == "":
		fmt.Fprintln(stderr, "preftune-trainer tokenize: --model is required")
		return contract.ExitUsage
	case *templateFile != "" && !*chat:
		fmt.Fprintln(stderr, "preftune-trainer tokenize: --chat-template needs --chat (plain text is tokenized without a template)")
		return contract.ExitUsage
	}
	tok, err := tokenizer.Load(*modelDir)
	if err != nil {
		fmt.Fprintf(stderr, "preftune-trainer tokenize: %v\n", err)
		return contract.ExitInvalidInput
	}
	b, err := io.ReadAll(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "preftune-trainer tokenize: reading stdin: %v\n", err)
		return contract.ExitFailed
	}
	text := string(b)
	if !utf8.ValidString(text) {
		fmt.Fprintln(stderr, "preftune-trainer tokenize: warning: stdin is not valid UTF-8; invalid bytes are tokenized as U+FFFD")
	}
	var ids []int
	if *chat {
		chatIDs, rendered, err := chatPromptIDs(tok, *modelDir, *templateFile, text, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "preftune-trainer tokenize: --chat: %v\n", err)
			return contract.ExitInvalidInput
		}
		fmt.Fprintf(stderr, "preftune-trainer tokenize: rendered by the chat template: %s\n", strconv.Quote(rendered))
		if *special {
			fmt.Fprintln(stderr, "preftune-trainer tokenize: note: --special adds nothing with --chat: the ids are the training prompt's, BOS included")
		}
		text, b, ids = rendered, []byte(rendered), chatIDs
	} else {
		ids = tok.Encode(text)
	}
	decodeAll := tok.Decode
	piece := func(id int) string { return bytePiece(id) }
	decodeOne := func(id int) string { return tok.Decode([]int{id}) }
	if p, ok := tok.(*tokenizer.Pretrained); ok {
		for _, s := range p.IgnoredSettings() {
			fmt.Fprintf(stderr, "preftune-trainer tokenize: note: tokenizer.json's %s setting is not applied (the trainer truncates and pads itself)\n", s)
		}
		defer func() {
			if n := p.DroppedChars(); n > 0 {
				fmt.Fprintf(stderr, "preftune-trainer tokenize: warning: %d characters have no token (no unk_token, no byte fallback) and were dropped\n", n)
			}
		}()
		if *special && !*chat {
			ids = p.EncodeWithSpecial(text)
		}
		decodeAll = p.DecodeWithSpecial
		piece = func(id int) string { s, _ := p.Token(id); return s }
		decodeOne = func(id int) string { return p.DecodeWithSpecial([]int{id}) }
	} else if *special && !*chat && tok.BOS() >= 0 {
		ids = append([]int{tok.BOS()}, ids...)
	}
	out := tokenizeOutput{IDs: ids, Pieces: make([]string, len(ids)), Decoded: decodeAll(ids), Bytes: len(b)}
	for i, id := range ids {
		out.Pieces[i] = piece(id)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "preftune-trainer tokenize: %v\n", err)
			return contract.ExitFailed
		}
		return contract.ExitOK
	}
	fmt.Fprintf(stdout, "%6s %8s  %-24s %s\n", "index", "id", "piece", "text")
	// A token's text is what it adds to the decoded prefix (decoders such as Llama-2's strip a leading space only at
	// the start, so a token decoded alone can differ); for long inputs, or where the prefix changes, it is the
	// token decoded alone.
	prev := ""
	for i, id := range ids {
		one := decodeOne(id)
		if len(ids) <= 4096 {
			cur := decodeAll(ids[:i+1])
			if strings.HasPrefix(cur, prev) {
				one = cur[len(prev):]
			}
			prev = cur
		}
		fmt.Fprintf(stdout, "%6d %8d  %-24s %s\n", i, id, strconv.Quote(out.Pieces[i]), strconv.Quote(one))
	}
	same := "decodes back to the input (special tokens skipped)"
	if back := tok.Decode(ids); back != text {
		same = fmt.Sprintf("decodes to %s (special tokens skipped), not the input", strconv.Quote(back))
		if out.Decoded == text {
			same = "decodes back to the input (special tokens kept)"
		}
	}
	fmt.Fprintf(stdout, "%d tokens for %d bytes (%s, vocabulary %d); %s\n", len(ids), len(b), tok.Name(), tok.VocabSize(), same)
	return contract.ExitOK
}

// bytePiece names a byte tokenizer id as the byte tokenizer's tokenizer.json does.
func bytePiece(id int) string {
	switch {
	case id >= 0 && id < 256:
		return fmt.Sprintf("<0x%02X>", id)
	case id == tokenizer.ByteBOS:
		return tokenizer.ByteBOSToken
	case id == tokenizer.ByteEOS:
		return tokenizer.ByteEOSToken
	case id == tokenizer.BytePAD:
		return tokenizer.BytePADToken
	}
	return "?"
}

// chatPromptIDs lays out text as the prompt of a training row holding it as one user message, through the same
// data.Encoder a run builds (chatEncoder), with add_generation_prompt and BOS once by the run's rule
// (data.Encoder.PromptIDs). It returns the ids and the rendered prompt, and warns when the text holds the
// template's control markers (a user message containing "<|im_start|>" renders like a real turn).
func chatPromptIDs(tok tokenizer.Tokenizer, modelDir, templateFile, text string, stderr io.Writer) ([]int, string, error) {
	enc, err := chatEncoder("tokenize", tok, templateFile, stderr, modelDir)
	if err != nil {
		return nil, "", err
	}
	return encodeChatPrompt("tokenize", enc, text, stderr)
}

// chatEncoder builds the data.Encoder a run would for tok: the chat template chosen as a run chooses it
// (data.ChatTemplateOf: the file given by --chat-template, else the first of dirs whose tokenizer_config.json or
// chat_template.jinja has one, else the built-in template, which a run also falls back to), said on stderr.
func chatEncoder(cmd string, tok tokenizer.Tokenizer, templateFile string, stderr io.Writer, dirs ...string) (*data.Encoder, error) {
	override, err := readChatTemplateFile(templateFile)
	if err != nil {
		return nil, err
	}
	src, origin, from := override, data.TemplateOverride, ""
	if override == "" {
		origin = data.TemplateBuiltin
		for _, dir := range dirs {
			if src, origin, err = data.ChatTemplateOf("", dir); err != nil {
				return nil, err
			}
			if origin == data.TemplateModel {
				from = dir
				break
			}
		}
	}
	switch origin {
	case data.TemplateOverride:
		fmt.Fprintf(stderr, "preftune-trainer %s: chat template: %s (--chat-template)\n", cmd, templateFile)
	case data.TemplateModel:
		fmt.Fprintf(stderr, "preftune-trainer %s: chat template: %s's (tokenizer_config.json or chat_template.jinja)\n", cmd, from)
	default:
		fmt.Fprintf(stderr, "preftune-trainer %s: chat template: the trainer's built-in one (<|user|> ... <|assistant|>): "+
			"the model has none, and a run falls back to it too; give one with --chat-template\n", cmd)
	}
	enc, err := data.NewEncoder(tok, src, origin, 2)
	if err != nil {
		return nil, err
	}
	if w := enc.UnknownTurnMarkersWarning(); w != "" {
		fmt.Fprintf(stderr, "preftune-trainer %s: warning: %s\n", cmd, w)
	}
	return enc, nil
}

// encodeChatPrompt is chatPromptIDs with the encoder built.
func encodeChatPrompt(cmd string, enc *data.Encoder, text string, stderr io.Writer) ([]int, string, error) {
	if m := enc.Template.FindControlMarkers(text); len(m) > 0 {
		fmt.Fprintf(stderr, "preftune-trainer %s: warning: the text holds the template's control markers %q; they render like the template's own\n", cmd, m)
	}
	return enc.PromptIDs(chatRow(text))
}

// chatRow is the training row --chat lays out: text as one user message, with an empty assistant response.
func chatRow(text string) data.Row {
	return data.Row{Line: 1, Chat: &data.Chat{Prompt: []data.Message{{Role: data.RoleUser, Content: text}}}}
}

// readChatTemplateFile reads a --chat-template file ("" when path is ""); an empty file is an error.
func readChatTemplateFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--chat-template: %w", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", fmt.Errorf("--chat-template: %s is empty", path)
	}
	return string(b), nil
}
