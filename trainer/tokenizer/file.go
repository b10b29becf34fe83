package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// FileName is the tokenizer's file beside a model's weights.
const FileName = "tokenizer.json"

// fileFormat is tokenizer.json as DESIGN.md specifies it.
type fileFormat struct {
	Type      string `json:"type"`
	VocabSize int    `json:"vocab_size"`
	BOS       int    `json:"bos"`
	EOS       int    `json:"eos"`
	PAD       int    `json:"pad"`
}

// Save writes tok's tokenizer.json into dir (which must exist).
func Save(dir string, tok Tokenizer) error {
	b, err := json.MarshalIndent(fileFormat{
		Type: tok.Name(), VocabSize: tok.VocabSize(), BOS: tok.BOS(), EOS: tok.EOS(), PAD: tok.PAD(),
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, FileName), append(b, '\n'), 0o644)
}

// Load reads dir/tokenizer.json and returns the tokenizer it describes: a Hugging Face tokenizer.json (it has a
// "model") is read with LoadDir (a *Pretrained, with tokenizer_config.json and generation_config.json); DESIGN.md's
// {"type": "byte", ...} file gives Byte. A byte file whose ids disagree with the type's fixed layout is an error: a
// model trained with other ids would silently produce garbage.
func Load(dir string) (Tokenizer, error) {
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if IsHFTokenizerJSON(b) {
		return LoadDir(dir)
	}
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return FromSpec(f.Type, f.VocabSize, f.BOS, f.EOS, f.PAD, path)
}

// ByName returns the tokenizer of a type name, as an architecture's "tokenizer" field gives it.
func ByName(name string) (Tokenizer, error) {
	switch name {
	case ByteName:
		return NewByte(), nil
	}
	return nil, fmt.Errorf("unknown tokenizer %q (supported: %q)", name, ByteName)
}

// FromSpec checks a tokenizer.json's fields against the type's layout; where names the file for errors.
func FromSpec(typ string, vocab, bos, eos, pad int, where string) (Tokenizer, error) {
	tok, err := ByName(typ)
	if err != nil {
		return nil, fmt.Errorf("%s: field type: %w", where, err)
	}
	for _, c := range []struct {
		field     string
		got, want int
	}{
		{"vocab_size", vocab, tok.VocabSize()}, {"bos", bos, tok.BOS()}, {"eos", eos, tok.EOS()}, {"pad", pad, tok.PAD()},
	} {
		if c.got != c.want {
			return nil, fmt.Errorf("%s: field %s is %d, the %s tokenizer uses %d", where, c.field, c.got, typ, c.want)
		}
	}
	return tok, nil
}
