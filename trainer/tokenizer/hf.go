package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// HF is a tokenizer read from a Hugging Face tokenizer.json, applied as the Rust crate `tokenizers` (v0.23) applies
// it; the tests compare ids and decoded text with its npm build on the real files of GPT-2, Llama-2/Mistral,
// Llama-3, Qwen3, Gemma-3, DeepSeek-V3 and stories260K.
//
// Encoding follows the crate's pipeline: added tokens are cut out of the raw text first (leftmost, longest match;
// honouring lstrip, rstrip and single_word; tokens with "normalized": true are matched after normalisation), each
// remaining piece is normalised, pre-tokenised into words, and each word goes through the BPE model; the
// post-processor's special tokens are added only by EncodeWithSpecial. Decoding maps ids to tokens and runs the
// decoder chain; it does not apply transformers' clean_up_tokenization_spaces (the Rust crate does not either).
//
// Supported components (anything else fails at load, naming the component): model BPE (byte_fallback, fuse_unk,
// ignore_merges, continuing_subword_prefix, end_of_word_suffix; merges as "a b" strings or [a, b] pairs);
// normalizers Sequence, NFC, NFD, NFKC, NFKD, Prepend, Replace, Strip; pre-tokenizers Sequence, Split, ByteLevel,
// Metaspace, Digits, Punctuation, WhitespaceSplit; post-processors Sequence, ByteLevel, TemplateProcessing (single),
// RobertaProcessing, BertProcessing; decoders Sequence, ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace.
//
// Split patterns run on regexp2 (Oniguruma syntax with lookahead), except GPT-2's, Llama-3's and Qwen's, which have
// hand-written matchers (hf_fastsplit.go: several times faster, and right where regexp2 is not: Oniguruma's (?i)
// folds ſ to s, so "'ſ" is a contraction).
//
// Character classes: regexp2 and Go's unicode package use Unicode 15.0 tables, older than the Rust crate's (16.0);
// unicode_extra.go, generated from the reference's own regex engine, adds the characters of Unicode 15.1 and 16.0
// (CJK Extension I, Egyptian hieroglyphs extended, Garay, new emoji, ...) to \p{L}, \p{M}, \p{N}, \p{P}, \p{S} in
// split patterns, Digits, Punctuation and single_word.
//
// Known differences from the Rust crate: in other regex patterns (run by regexp2), (?i) does not fold ſ to s nor K
// (Kelvin) to k, and subcategories such as \p{Lu} miss the Unicode 15.1/16.0 additions; NFC and the other
// normalisation forms use golang.org/x/text's Unicode 15.0 data (a Unicode 16.0 character with a canonical
// decomposition can normalise differently); Metaspace's prepend_scheme "first" treats a word as first when it starts
// at byte 0 of the input before normalisation changed offsets. Text that is not valid UTF-8 has each invalid byte
// replaced by U+FFFD before encoding (the Rust crate accepts only valid UTF-8).
//
// An HF is safe for concurrent use.
type HF struct {
	model     *bpe
	normalize normalizer
	preTok    preTokenizer
	post      processor
	decode    decoder

	added      []AddedToken
	addedByID  map[int]*AddedToken
	addedByStr map[string]*AddedToken
	special    map[string]bool // contents of special added tokens
	decodeAs   map[int]string  // normalised content of normalized added tokens, which decoding uses
	rawTrie    *addedTrie      // added tokens with normalized false
	normTrie   *addedTrie      // added tokens with normalized true, matched on normalised text
	idToToken  map[int]string
	vocabSize  int
	ignored    []string
}

// AddedToken is an entry of tokenizer.json's added_tokens (Hugging Face's AddedToken).
type AddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type hfJSON struct {
	Version       string          `json:"version"`
	Truncation    json.RawMessage `json:"truncation"`
	Padding       json.RawMessage `json:"padding"`
	AddedTokens   []AddedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Model         *modelJSON      `json:"model"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
}

// IsHFTokenizerJSON reports whether data looks like a Hugging Face tokenizer.json (it has a "model" object), as
// opposed to the byte tokenizer's {"type": "byte", ...} file of DESIGN.md.
func IsHFTokenizerJSON(data []byte) bool {
	var probe struct {
		Model json.RawMessage `json:"model"`
	}
	return json.Unmarshal(data, &probe) == nil && !isNull(probe.Model)
}

// LoadHFFile reads a tokenizer.json file; errors name the file.
func LoadHFFile(path string) (*HF, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := ParseHF(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseHF builds a tokenizer from the content of a tokenizer.json. Its truncation and padding settings are not
// applied (the trainer truncates and pads itself, once per pair; transformers also resets them on every call):
// IgnoredSettings names them so callers can say so.
func ParseHF(data []byte) (*HF, error) {
	var j hfJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	wrap := func(err error) error { return fmt.Errorf("tokenizer.json: %w", err) }
	if j.Model == nil {
		return nil, wrap(fmt.Errorf("field model is missing"))
	}
	var ignored []string
	if !isNull(j.Truncation) {
		ignored = append(ignored, "truncation")
	}
	if !isNull(j.Padding) {
		ignored = append(ignored, "padding")
	}
	t := &HF{ignored: ignored, addedByID: map[int]*AddedToken{}, addedByStr: map[string]*AddedToken{}, special: map[string]bool{},
		decodeAs: map[int]string{}, idToToken: map[int]string{}}
	var err error
	if t.model, err = buildBPE(j.Model); err != nil {
		return nil, wrap(err)
	}
	if t.normalize, err = buildNormalizer(j.Normalizer); err != nil {
		return nil, wrap(err)
	}
	if t.preTok, err = buildPreTokenizer(j.PreTokenizer); err != nil {
		return nil, wrap(err)
	}
	if t.post, err = buildProcessor(j.PostProcessor); err != nil {
		return nil, wrap(err)
	}
	if t.decode, err = buildDecoder(j.Decoder); err != nil {
		return nil, wrap(err)
	}
	for tok, id := range t.model.vocab {
		if id < 0 {
			return nil, wrap(fmt.Errorf("model.vocab: token %q has negative id %d", tok, id))
		}
		if other, dup := t.idToToken[id]; dup {
			return nil, wrap(fmt.Errorf("model.vocab: id %d is both %q and %q", id, other, tok))
		}
		t.idToToken[id] = tok
		t.vocabSize = max(t.vocabSize, id+1)
	}
	t.added = j.AddedTokens
	var raw, normed []*AddedToken
	maxAdded := -1
	for i := range t.added {
		a := &t.added[i]
		if a.Content == "" {
			return nil, wrap(fmt.Errorf("added_tokens[%d]: empty content", i))
		}
		// The Rust crate does not take an added token's id from the file: a token in the model's vocabulary gets
		// that id, any other the next id after the vocabulary and the added tokens before it. A file whose ids
		// differ (edited by hand) would give other ids there than here, so it is an error.
		want, inVocab := t.model.vocab[a.Content]
		if !inVocab {
			want = len(t.model.vocab)
			if maxAdded >= len(t.model.vocab) {
				want = maxAdded + 1
			}
		}
		if a.ID != want {
			return nil, wrap(fmt.Errorf("added_tokens[%d] %q: id %d, but Hugging Face tokenizers assigns it id %d "+
				"(its vocabulary id, or the next id after the vocabulary and the added tokens before it)", i, a.Content, a.ID, want))
		}
		maxAdded = max(maxAdded, a.ID)
		if prev, dup := t.addedByID[a.ID]; dup {
			return nil, wrap(fmt.Errorf("added_tokens[%d] %q: id %d is already %q", i, a.Content, a.ID, prev.Content))
		}
		t.addedByID[a.ID] = a
		t.addedByStr[a.Content] = a
		if a.Special {
			t.special[a.Content] = true
		}
		// Like the Rust crate, a normalized token decodes as its normalised content (Gemma-style Prepend or
		// Replace normalizers turn "<tool>" into "▁<tool>", which the decoder turns back).
		if a.Normalized && t.normalize != nil {
			if n := t.normalize(a.Content); n != a.Content {
				t.decodeAs[a.ID] = n
			}
		}
		t.vocabSize = max(t.vocabSize, a.ID+1)
		if a.Normalized {
			normed = append(normed, a)
		} else {
			raw = append(raw, a)
		}
	}
	t.rawTrie = newAddedTrie(raw, nil)
	t.normTrie = newAddedTrie(normed, t.normalize)
	return t, nil
}

// IgnoredSettings names the tokenizer.json settings present in the file that encoding does not apply
// ("truncation", "padding").
func (t *HF) IgnoredSettings() []string { return append([]string(nil), t.ignored...) }

// VocabSize is the number of ids the tokenizer can produce: its highest id (model vocabulary or added token) + 1.
// A model's embedding can be larger (Gemma-3's config.json says 262,208; its tokenizer 262,145).
func (t *HF) VocabSize() int { return t.vocabSize }

// TokenID returns the id of a token string (an added token's content or a model vocabulary entry).
func (t *HF) TokenID(token string) (int, bool) {
	if a, ok := t.addedByStr[token]; ok {
		return a.ID, true
	}
	id, ok := t.model.vocab[token]
	return id, ok
}

// Token returns the token string of an id (for byte-level models in the byte alphabet, e.g. "Ġthe"); false when
// the id is not in the vocabulary.
func (t *HF) Token(id int) (string, bool) {
	if a, ok := t.addedByID[id]; ok {
		return a.Content, true
	}
	s, ok := t.idToToken[id]
	return s, ok
}

// IsSpecial reports whether id is a special added token (those Decode skips).
func (t *HF) IsSpecial(id int) bool {
	a, ok := t.addedByID[id]
	return ok && a.Special
}

// DroppedChars is how many characters Encode has dropped since load because the model had no token for them: not
// in the vocabulary, no byte fallback and no unk_token (the Rust crate drops them silently; byte-level and
// byte-fallback models never drop any). Callers that encode a dataset report it.
func (t *HF) DroppedChars() int64 { return t.model.dropped.Load() }

// AddedTokens returns tokenizer.json's added tokens, in file order.
func (t *HF) AddedTokens() []AddedToken { return append([]AddedToken(nil), t.added...) }

// Encode returns the ids of text without the post-processor's special tokens (Hugging Face's
// encode(text, add_special_tokens=False)). Special-token text inside text (for example "<|im_start|>") does become
// its special id, as in Hugging Face.
func (t *HF) Encode(text string) []int { return t.encode(text) }

// EncodeBatch encodes texts on up to GOMAXPROCS goroutines (Hugging Face's encode_batch without special tokens);
// ids[i] is Encode(texts[i]).
func (t *HF) EncodeBatch(texts []string) [][]int {
	out := make([][]int, len(texts))
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(texts) {
					return
				}
				out[i] = t.encode(texts[i])
			}
		}()
	}
	wg.Wait()
	return out
}

// EncodeWithSpecial returns the ids of text with the special tokens tokenizer.json's post-processor adds (Hugging
// Face's encode(text, add_special_tokens=True)): Llama-2, Gemma-3 and stories260K add BOS; GPT-2, Llama-3 (its file
// here has a ByteLevel post-processor), Qwen3 and DeepSeek-V3's file add nothing. transformers may add BOS where the
// file does not (add_bos_token in tokenizer_config.json): Config reports that separately.
func (t *HF) EncodeWithSpecial(text string) []int {
	ids := t.encode(text)
	if t.post != nil {
		ids = t.post(ids)
	}
	return ids
}

// Decode returns the text of ids, skipping special tokens (Hugging Face's decode(ids, skip_special_tokens=True)).
// Ids outside the vocabulary are skipped, as in Hugging Face.
func (t *HF) Decode(ids []int) string { return t.decodeIDs(ids, true) }

// DecodeWithSpecial returns the text of ids including special tokens' text (skip_special_tokens=False).
func (t *HF) DecodeWithSpecial(ids []int) string { return t.decodeIDs(ids, false) }

func (t *HF) decodeIDs(ids []int, skipSpecial bool) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		s, ok := t.decodeAs[id]
		if !ok {
			if s, ok = t.Token(id); !ok {
				continue
			}
		}
		// As in the Rust crate, a token is skipped when its decoding string is a special token's content.
		if skipSpecial && t.special[s] {
			continue
		}
		toks = append(toks, s)
	}
	if t.decode == nil {
		return strings.Join(toks, " ")
	}
	return strings.Join(t.decode(toks), "")
}

// segment is a piece of the input: an added token (id >= 0) or text to normalise and tokenize.
type segment struct {
	text  string
	id    int
	first bool
}

func (t *HF) encode(text string) []int {
	if !utf8.ValidString(text) {
		text = string([]rune(text)) // each invalid byte becomes U+FFFD
	}
	var ids []int
	for _, seg := range t.rawTrie.split(text, true) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		s := seg.text
		if t.normalize != nil {
			s = t.normalize(s)
		}
		for _, sub := range t.normTrie.split(s, seg.first) {
			if sub.id >= 0 {
				ids = append(ids, sub.id)
				continue
			}
			words := []word{{text: sub.text, first: sub.first}}
			if t.preTok != nil {
				words = t.preTok(words)
			}
			for _, w := range words {
				ids = t.model.tokenize(w.text, ids)
			}
		}
	}
	return ids
}

// addedTrie finds added tokens in text: the leftmost match, the longest one there (aho-corasick's LeftmostLongest,
// which the Rust crate uses).
type addedTrie struct {
	nodes []trieNode
	first [256]bool
}

type trieNode struct {
	next  map[byte]int32
	token *AddedToken
}

func newAddedTrie(tokens []*AddedToken, normalize normalizer) *addedTrie {
	tr := &addedTrie{nodes: []trieNode{{}}}
	// Insert in id order so that two tokens with the same (normalised) content resolve the same way every time.
	sort.SliceStable(tokens, func(i, j int) bool { return tokens[i].ID < tokens[j].ID })
	for _, a := range tokens {
		key := a.Content
		if normalize != nil {
			key = normalize(key)
		}
		if key == "" {
			continue
		}
		tr.first[key[0]] = true
		n := int32(0)
		for i := 0; i < len(key); i++ {
			nx, ok := tr.nodes[n].next[key[i]]
			if !ok {
				if tr.nodes[n].next == nil {
					tr.nodes[n].next = map[byte]int32{}
				}
				nx = int32(len(tr.nodes))
				tr.nodes = append(tr.nodes, trieNode{})
				tr.nodes[n].next[key[i]] = nx
			}
			n = nx
		}
		if tr.nodes[n].token == nil {
			tr.nodes[n].token = a
		}
	}
	return tr
}

// longestAt returns the longest token matching at s[i:] and its length.
func (tr *addedTrie) longestAt(s string, i int) (*AddedToken, int) {
	var best *AddedToken
	bestLen := 0
	n := int32(0)
	for j := i; j < len(s); j++ {
		nx, ok := tr.nodes[n].next[s[j]]
		if !ok {
			break
		}
		n = nx
		if tr.nodes[n].token != nil {
			best, bestLen = tr.nodes[n].token, j+1-i
		}
	}
	return best, bestLen
}

// split cuts s into text and added-token segments the way the Rust crate's AddedVocabulary::find_matches does.
// first says whether s starts at the input's first byte.
func (tr *addedTrie) split(s string, first bool) []segment {
	if s == "" {
		return nil
	}
	if len(tr.nodes) == 1 {
		return []segment{{text: s, id: -1, first: first}}
	}
	var segs []segment
	startOffset := 0
	for i := 0; i < len(s); {
		if !tr.first[s[i]] {
			i++
			continue
		}
		a, n := tr.longestAt(s, i)
		if a == nil {
			i++
			continue
		}
		start, stop := i, i+n
		i = stop
		if a.SingleWord {
			startSpace := start == 0 || !endsWithWordChar(s[:start])
			stopSpace := stop == len(s) || !startsWithWordChar(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if a.LStrip {
			newStart := len(strings.TrimRightFunc(s[:start], unicode.IsSpace))
			start = max(newStart, startOffset)
		}
		if a.RStrip {
			stop = len(s) - len(strings.TrimLeftFunc(s[stop:], unicode.IsSpace))
			i = stop
		}
		if startOffset < start {
			segs = append(segs, segment{text: s[startOffset:start], id: -1, first: first && startOffset == 0})
		}
		segs = append(segs, segment{id: a.ID})
		startOffset = stop
	}
	if startOffset < len(s) {
		segs = append(segs, segment{text: s[startOffset:], id: -1, first: first && startOffset == 0})
	}
	return segs
}

// isWordChar is Rust regex's Unicode \w (Alphabetic, marks, decimal digits, connector punctuation, join controls),
// which the crate's single_word check uses.
func isWordChar(r rune) bool {
	return unicode.In(r, unicode.L, unicode.M, unicode.Nd, unicode.Nl, unicode.Pc, unicode.Other_Alphabetic, unicode.Join_Control) ||
		isCategory(r, "L", unicode.L) || isCategory(r, "M", unicode.M) || isCategory(r, "Nd", unicode.Nd)
}

func endsWithWordChar(s string) bool {
	r, n := utf8.DecodeLastRuneInString(s)
	return n > 0 && isWordChar(r)
}

func startsWithWordChar(s string) bool {
	r, n := utf8.DecodeRuneInString(s)
	return n > 0 && isWordChar(r)
}
