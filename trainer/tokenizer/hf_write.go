package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The byte tokenizer's special tokens as text in its Hugging Face tokenizer.json.
const (
	ByteBOSToken = "<|bos|>"
	ByteEOSToken = "<|eos|>"
	BytePADToken = "<|pad|>"
)

// ConfigFileName is transformers' tokenizer settings file beside tokenizer.json.
const ConfigFileName = "tokenizer_config.json"

// ByteTokenizerJSON returns the byte tokenizer of DESIGN.md (ids 0-255 the bytes, 256 BOS, 257 EOS, 258 PAD) as a
// Hugging Face tokenizer.json: a BPE model whose vocabulary is the 256 byte-fallback tokens "<0x00>".."<0xFF>" with
// ids 0-255 and no merges, so every character falls back to its UTF-8 bytes; BOS, EOS and PAD are the special added
// tokens "<|bos|>", "<|eos|>", "<|pad|>"; the post-processor puts BOS first (EncodeWithSpecial, and transformers'
// add_special_tokens); the decoder is ByteFallback + Fuse. ParseHF and Hugging Face's tokenizers (npm 0.23.2, the
// test) give Byte's ids for any text, with one deliberate difference: text holding "<|bos|>", "<|eos|>" or "<|pad|>"
// encodes to the special id (Hugging Face tokenizers always match added tokens), where Byte.Encode gives bytes.
// Decoding invalid UTF-8 gives U+FFFD per byte where Byte.Decode returns the raw bytes.
func ByteTokenizerJSON() []byte {
	var b bytes.Buffer
	b.WriteString("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [\n")
	for i, tok := range []string{ByteBOSToken, ByteEOSToken, BytePADToken} {
		sep := ","
		if i == 2 {
			sep = ""
		}
		fmt.Fprintf(&b, "    {\"id\": %d, \"content\": %q, \"single_word\": false, \"lstrip\": false, \"rstrip\": false, "+
			"\"normalized\": false, \"special\": true}%s\n", ByteBOS+i, tok, sep)
	}
	b.WriteString("  ],\n  \"normalizer\": null,\n  \"pre_tokenizer\": null,\n")
	fmt.Fprintf(&b, "  \"post_processor\": {\"type\": \"TemplateProcessing\", "+
		"\"single\": [{\"SpecialToken\": {\"id\": %[1]q, \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], "+
		"\"pair\": [{\"SpecialToken\": {\"id\": %[1]q, \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, "+
		"{\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}], "+
		"\"special_tokens\": {%[1]q: {\"id\": %[1]q, \"ids\": [%[2]d], \"tokens\": [%[1]q]}}},\n", ByteBOSToken, ByteBOS)
	b.WriteString("  \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]},\n")
	b.WriteString("  \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \"continuing_subword_prefix\": null, " +
		"\"end_of_word_suffix\": null, \"fuse_unk\": false, \"byte_fallback\": true, \"ignore_merges\": false,\n    \"vocab\": {")
	for i := 0; i < 256; i++ {
		if i%8 == 0 {
			b.WriteString("\n      ")
		} else {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "\"<0x%02X>\": %d", i, i)
		if i < 255 {
			b.WriteString(",")
		}
	}
	b.WriteString("\n    },\n    \"merges\": []\n  }\n}\n")
	return b.Bytes()
}

// ByteTokenizerConfigJSON returns the tokenizer_config.json that goes with ByteTokenizerJSON: its BOS, EOS and PAD
// tokens, add_bos_token true and add_eos_token false (the trainer appends EOS to responses itself), and the context
// length as model_max_length.
func ByteTokenizerConfigJSON(modelMaxLength int) []byte {
	cfg := map[string]any{
		"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": ByteBOSToken, "eos_token": ByteEOSToken,
		"pad_token": BytePADToken, "add_bos_token": true, "add_eos_token": false,
		"clean_up_tokenization_spaces": false, "model_max_length": modelMaxLength,
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		panic(err) // a map of strings, bools and ints always marshals
	}
	return append(b, '\n')
}

// WriteByteHF writes the byte tokenizer as tokenizer.json and tokenizer_config.json into dir (which must exist),
// for models trained from scratch; LoadDir reads them back as a Pretrained with Byte's ids.
func WriteByteHF(dir string, modelMaxLength int) error {
	if err := os.WriteFile(filepath.Join(dir, FileName), ByteTokenizerJSON(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ConfigFileName), ByteTokenizerConfigJSON(modelMaxLength), 0o644)
}

// GPT2TokenizerJSON builds GPT-2's tokenizer.json from its original files, encoder.json (token -> id) and vocab.bpe
// (one merge "a b" a line after a "#version" line), the way Hugging Face's GPT2TokenizerFast conversion lays it out:
// a byte-level BPE with GPT-2's split pattern (ByteLevel, use_regex), no normalizer, a ByteLevel decoder and
// "<|endoftext|>" as its special token.
func GPT2TokenizerJSON(encoderJSON, vocabBPE []byte) ([]byte, error) {
	var vocab map[string]int
	if err := json.Unmarshal(encoderJSON, &vocab); err != nil {
		return nil, fmt.Errorf("encoder.json: %w", err)
	}
	eot, ok := vocab["<|endoftext|>"]
	if !ok {
		return nil, fmt.Errorf("encoder.json: no <|endoftext|> token")
	}
	var merges []string
	for i, line := range strings.Split(string(vocabBPE), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || i == 0 && strings.HasPrefix(line, "#version") {
			continue
		}
		if strings.Count(line, " ") != 1 {
			return nil, fmt.Errorf("vocab.bpe: line %d %q is not two tokens separated by a space", i+1, line)
		}
		merges = append(merges, line)
	}
	type added struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	out := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens":   []added{{ID: eot, Content: "<|endoftext|>", Normalized: true, Special: true}},
		"normalizer":     nil,
		"pre_tokenizer":  byteLevel,
		"post_processor": byteLevel,
		"decoder":        byteLevel,
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "", "end_of_word_suffix": "",
			"fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": merges,
		},
	}
	return json.Marshal(out)
}
