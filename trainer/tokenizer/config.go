package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// File names beside tokenizer.json in a Hugging Face model directory.
const (
	GenerationConfigFileName = "generation_config.json"
	ChatTemplateFileName     = "chat_template.jinja"
)

// Config is what a model directory's tokenizer_config.json and generation_config.json say about special tokens
// and chat templates (transformers' PreTrainedTokenizerBase and GenerationConfig fields of the same names).
type Config struct {
	// BOSToken, EOSToken, PadToken, UnkToken are the tokens' text; "" when the file has none (null or absent).
	// The file may give a string or an AddedToken object ({"content": ...}); both are read.
	BOSToken, EOSToken, PadToken, UnkToken string
	// AddBOSToken and AddEOSToken are add_bos_token and add_eos_token; nil when absent. transformers' slow and
	// Llama/Gemma fast tokenizers add BOS/EOS by these flags even where tokenizer.json's post-processor does not;
	// Pretrained.AddsBOS (used wherever a sequence gets BOS) and Pretrained.EncodeWithSpecial apply add_bos_token
	// false; add_eos_token is not applied (training ends responses itself).
	AddBOSToken, AddEOSToken *bool
	// ChatTemplate is the default chat template: chat_template when it is a string, the entry named "default"
	// when it is a list of {"name", "template"}, or chat_template.jinja when tokenizer_config.json has none. ""
	// when there is none.
	ChatTemplate string
	// ChatTemplates are all named templates (a string chat_template is named "default").
	ChatTemplates map[string]string
	// CleanUpTokenizationSpaces is clean_up_tokenization_spaces. Decode does not apply it (see HF.Decode).
	CleanUpTokenizationSpaces bool
	// ModelMaxLength is model_max_length; 0 when absent or transformers' "no limit" sentinel (>= 1e18).
	ModelMaxLength int
	// GenerationEOSTokenIDs are generation_config.json's eos_token_id (an int or a list); GenerationBOSTokenID
	// and GenerationPadTokenID its bos_token_id and pad_token_id (nil when absent).
	GenerationEOSTokenIDs                      []int
	GenerationBOSTokenID, GenerationPadTokenID *int
}

// tokenField reads a special token given as a string, null, or an AddedToken object.
func tokenField(raw json.RawMessage, field string) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", fmt.Errorf("field %s: want a string, null or an object with \"content\", got %s", field, raw)
	}
	return *obj.Content, nil
}

// ParseConfig reads the content of tokenizer_config.json; generation_config.json's fields stay empty.
func ParseConfig(data []byte) (Config, error) {
	var j struct {
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
		Pad          json.RawMessage `json:"pad_token"`
		Unk          json.RawMessage `json:"unk_token"`
		AddBOS       *bool           `json:"add_bos_token"`
		AddEOS       *bool           `json:"add_eos_token"`
		ChatTemplate json.RawMessage `json:"chat_template"`
		CleanUp      *bool           `json:"clean_up_tokenization_spaces"`
		MaxLength    *float64        `json:"model_max_length"`
	}
	var c Config
	if err := json.Unmarshal(data, &j); err != nil {
		return c, fmt.Errorf("tokenizer_config.json: %w", err)
	}
	var err error
	for _, f := range []struct {
		raw  json.RawMessage
		name string
		dst  *string
	}{{j.BOS, "bos_token", &c.BOSToken}, {j.EOS, "eos_token", &c.EOSToken}, {j.Pad, "pad_token", &c.PadToken},
		{j.Unk, "unk_token", &c.UnkToken}} {
		if *f.dst, err = tokenField(f.raw, f.name); err != nil {
			return c, fmt.Errorf("tokenizer_config.json: %w", err)
		}
	}
	c.AddBOSToken, c.AddEOSToken = j.AddBOS, j.AddEOS
	if j.CleanUp != nil {
		c.CleanUpTokenizationSpaces = *j.CleanUp
	}
	if j.MaxLength != nil && *j.MaxLength > 0 && *j.MaxLength < 1e18 {
		if *j.MaxLength != math.Trunc(*j.MaxLength) {
			return c, fmt.Errorf("tokenizer_config.json: field model_max_length %g is not an integer", *j.MaxLength)
		}
		c.ModelMaxLength = int(*j.MaxLength)
	}
	if !isNull(j.ChatTemplate) {
		var s string
		if err := json.Unmarshal(j.ChatTemplate, &s); err == nil {
			c.ChatTemplates = map[string]string{"default": s}
		} else {
			var list []struct {
				Name     *string `json:"name"`
				Template *string `json:"template"`
			}
			if err := json.Unmarshal(j.ChatTemplate, &list); err != nil {
				return c, fmt.Errorf("tokenizer_config.json: field chat_template: want a string or a list of {\"name\", \"template\"}")
			}
			c.ChatTemplates = map[string]string{}
			for i, e := range list {
				if e.Name == nil || e.Template == nil {
					return c, fmt.Errorf("tokenizer_config.json: field chat_template[%d]: needs name and template", i)
				}
				if _, dup := c.ChatTemplates[*e.Name]; dup {
					return c, fmt.Errorf("tokenizer_config.json: field chat_template[%d]: name %q appears twice", i, *e.Name)
				}
				c.ChatTemplates[*e.Name] = *e.Template
			}
		}
		c.ChatTemplate = c.ChatTemplates["default"]
	}
	return c, nil
}

// parseGenerationConfig adds generation_config.json's token ids to c.
func parseGenerationConfig(data []byte, c *Config) error {
	var j struct {
		BOS *int            `json:"bos_token_id"`
		EOS json.RawMessage `json:"eos_token_id"`
		Pad *int            `json:"pad_token_id"`
	}
	if err := json.Unmarshal(data, &j); err != nil {
		return fmt.Errorf("generation_config.json: %w", err)
	}
	c.GenerationBOSTokenID, c.GenerationPadTokenID = j.BOS, j.Pad
	if isNull(j.EOS) {
		return nil
	}
	var one int
	if err := json.Unmarshal(j.EOS, &one); err == nil {
		c.GenerationEOSTokenIDs = []int{one}
		return nil
	}
	if err := json.Unmarshal(j.EOS, &c.GenerationEOSTokenIDs); err != nil {
		return fmt.Errorf("generation_config.json: field eos_token_id: want an integer or a list of integers, got %s", j.EOS)
	}
	return nil
}

// ReadConfig reads dir's tokenizer_config.json, generation_config.json and chat_template.jinja; each is optional.
func ReadConfig(dir string) (Config, error) {
	var c Config
	b, err := os.ReadFile(filepath.Join(dir, ConfigFileName))
	switch {
	case err == nil:
		if c, err = ParseConfig(b); err != nil {
			return c, fmt.Errorf("%s: %w", dir, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return c, err
	}
	if c.ChatTemplate == "" {
		if b, err := os.ReadFile(filepath.Join(dir, ChatTemplateFileName)); err == nil {
			c.ChatTemplate = string(b)
			if c.ChatTemplates == nil {
				c.ChatTemplates = map[string]string{}
			}
			c.ChatTemplates["default"] = c.ChatTemplate
		} else if !errors.Is(err, fs.ErrNotExist) {
			return c, err
		}
	}
	b, err = os.ReadFile(filepath.Join(dir, GenerationConfigFileName))
	switch {
	case err == nil:
		if err := parseGenerationConfig(b, &c); err != nil {
			return c, fmt.Errorf("%s: %w", dir, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return c, err
	}
	return c, nil
}

// Pretrained is a model directory's tokenizer: tokenizer.json (HF) with the special tokens of
// tokenizer_config.json and generation_config.json. It implements Tokenizer.
//
// BOS is bos_token's id (else generation_config's bos_token_id, else -1: Qwen3 has none). EOS is eos_token's id
// (else the first of generation_config's eos_token_id); a model without either fails to load, since every training
// response must end with it. PAD is pad_token's id, else generation_config's pad_token_id, else - for models
// without a pad token (Llama-2/3, Mistral, stories260K) - the EOS id, as transformers users do with
// `tokenizer.pad_token = tokenizer.eos_token`: padded positions are masked out of every loss (DESIGN.md), so the
// value only has to be a valid embedding row; PadIsEOS reports it, and code must find a sequence's end by its length
// or mask, never by searching for PAD.
type Pretrained struct {
	*HF
	Config   Config
	bos, eos int
	pad      int
	padIsEOS bool
	stop     []int
}

var _ Tokenizer = (*Pretrained)(nil)

// HFName is the Name of tokenizers read from a Hugging Face tokenizer.json.
const HFName = "huggingface"

// LoadDir reads a Hugging Face model directory's tokenizer.json, tokenizer_config.json and generation_config.json.
// Errors name the file and field.
func LoadDir(dir string) (*Pretrained, error) {
	h, err := LoadHFFile(filepath.Join(dir, FileName))
	if err != nil {
		return nil, err
	}
	c, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	return NewPretrained(h, c, dir)
}

// NewPretrained resolves c's special tokens in h; where names the directory in errors.
func NewPretrained(h *HF, c Config, where string) (*Pretrained, error) {
	p := &Pretrained{HF: h, Config: c, bos: -1, eos: -1, pad: -1}
	resolve := func(tok, field string, fallback *int) (int, error) {
		if tok != "" {
			id, ok := h.TokenID(tok)
			if !ok {
				return -1, fmt.Errorf("%s: tokenizer_config.json: field %s %q is not a token of tokenizer.json", where, field, tok)
			}
			return id, nil
		}
		if fallback != nil {
			if *fallback < 0 || *fallback >= h.VocabSize() {
				return -1, fmt.Errorf("%s: generation_config.json: %s id %d is outside the vocabulary [0, %d)", where, field, *fallback, h.VocabSize())
			}
			return *fallback, nil
		}
		return -1, nil
	}
	var firstEOS *int
	if len(c.GenerationEOSTokenIDs) > 0 {
		firstEOS = &c.GenerationEOSTokenIDs[0]
	}
	var err error
	if p.bos, err = resolve(c.BOSToken, "bos_token", c.GenerationBOSTokenID); err != nil {
		return nil, err
	}
	if p.eos, err = resolve(c.EOSToken, "eos_token", firstEOS); err != nil {
		return nil, err
	}
	if p.eos < 0 {
		return nil, fmt.Errorf("%s: no EOS token: tokenizer_config.json has no eos_token and generation_config.json no eos_token_id", where)
	}
	if p.pad, err = resolve(c.PadToken, "pad_token", c.GenerationPadTokenID); err != nil {
		return nil, err
	}
	if p.pad < 0 {
		p.pad, p.padIsEOS = p.eos, true
	}
	seen := map[int]bool{}
	for _, id := range append([]int{p.eos}, c.GenerationEOSTokenIDs...) {
		if id < 0 || id >= h.VocabSize() {
			return nil, fmt.Errorf("%s: generation_config.json: eos_token_id %d is outside the vocabulary [0, %d)", where, id, h.VocabSize())
		}
		if !seen[id] {
			seen[id] = true
			p.stop = append(p.stop, id)
		}
	}
	return p, nil
}

// Name is HFName.
func (p *Pretrained) Name() string { return HFName }

// BOS is the BOS id, or -1 when the model has none (Qwen3).
func (p *Pretrained) BOS() int { return p.bos }

// EOS is the EOS id of tokenizer_config.json (the end of a training response).
func (p *Pretrained) EOS() int { return p.eos }

// PAD is the padding id: the pad token's, or EOS's when the model has none (PadIsEOS).
func (p *Pretrained) PAD() int { return p.pad }

// AddsBOS reports whether sequences built with this tokenizer start with its BOS: false when the model has none
// or tokenizer_config.json says "add_bos_token": false, true otherwise (true or absent). This follows
// transformers' LlamaTokenizerFast and GemmaTokenizerFast, which rebuild the post-processor without BOS when
// add_bos_token is false. A chat template that writes BOS itself still gives the sequence its one BOS.
func (p *Pretrained) AddsBOS() bool {
	return p.bos >= 0 && (p.Config.AddBOSToken == nil || *p.Config.AddBOSToken)
}

// EncodeWithSpecial returns the ids of text with the special tokens the post-processor adds
// (HF.EncodeWithSpecial), without the leading BOS when add_bos_token is false (AddsBOS), as transformers'
// encode(text, add_special_tokens=True) gives for such a tokenizer.
func (p *Pretrained) EncodeWithSpecial(text string) []int {
	ids := p.HF.EncodeWithSpecial(text)
	if p.bos < 0 || p.AddsBOS() || len(ids) == 0 || ids[0] != p.bos {
		return ids
	}
	// The post-processor put BOS before the text's own ids: drop it (a text that starts with the BOS token's
	// text keeps that id).
	if plain := p.HF.Encode(text); len(ids) >= 1+len(plain) && slices.Equal(ids[1:1+len(plain)], plain) {
		return ids[1:]
	}
	return ids
}

// AddsBOS reports whether sequences built with tok start with its BOS: Pretrained.AddsBOS for a Hugging Face
// tokenizer, else whether it has a BOS (BOS() >= 0; the byte tokenizer always does).
func AddsBOS(tok Tokenizer) bool {
	if a, ok := tok.(interface{ AddsBOS() bool }); ok {
		return a.AddsBOS()
	}
	return tok.BOS() >= 0
}

// PadIsEOS reports that the model has no pad token and PAD is the EOS id.
func (p *Pretrained) PadIsEOS() bool { return p.padIsEOS }

// StopTokens are the ids that end generation: EOS, then generation_config.json's eos_token_id(s) (Llama-3's
// <|eot_id|>, Qwen3's <|endoftext|>), without repeats.
func (p *Pretrained) StopTokens() []int { return append([]int(nil), p.stop...) }

// ChatTemplateNames lists the named chat templates, sorted.
func (c Config) ChatTemplateNames() []string {
	names := make([]string, 0, len(c.ChatTemplates))
	for n := range c.ChatTemplates {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// cleanUpReplacer is transformers' clean_up_tokenization (PreTrainedTokenizerBase), in its order.
var cleanUpReplacer = strings.NewReplacer(" .", ".", " ?", "?", " !", "!", " ,", ",", " ' ", "'", " n't", "n't",
	" 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re")

// CleanUpTokenizationSpaces applies transformers' clean_up_tokenization to decoded text: it removes the space
// before . ? ! , and English contractions. HF.Decode follows Hugging Face's Rust crate and never applies it;
// callers that must reproduce transformers' decode(...) apply it when Config.CleanUpTokenizationSpaces is true.
func CleanUpTokenizationSpaces(text string) string { return cleanUpReplacer.Replace(text) }
