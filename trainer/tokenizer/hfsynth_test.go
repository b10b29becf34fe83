package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// synthModel returns a small BPE model block: "<unk>" 0, "<s>" 1, "</s>" 2, the 256 byte-fallback tokens, the
// byte-level alphabet, "▁", ASCII letters, digits and punctuation, and merges that build a few words left to right.
func synthModel(byteFallback bool, extra string) (string, int) {
	vocab := map[string]int{}
	add := func(s string) {
		if _, ok := vocab[s]; !ok {
			vocab[s] = len(vocab)
		}
	}
	for _, s := range []string{"<unk>", "<s>", "</s>"} {
		add(s)
	}
	for b := 0; b < 256; b++ {
		add(fmt.Sprintf("<0x%02X>", b))
	}
	for b := 0; b < 256; b++ {
		add(byteRunes[b])
	}
	for _, r := range "▁ abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'#-" {
		add(string(r))
	}
	var merges [][2]string
	seen := map[[2]string]bool{}
	for _, w := range []string{"▁the", "▁a", "▁hello", "▁world", "he", "ll", "▁once", "▁upon", "▁time", "ing", "▁to",
		"12", "▁▁", "▁▁▁▁", "Ġthe", "Ġhello", "ĠĠ", "the", "hello", "world", " the", "  ", "AB", "▁AB",
		// merges across punctuation (ASCII and Unicode), so that where a pre-tokenizer splits shows in the ids
		"a,b", "a.b", byteLevelEncode("the«"), byteLevelEncode("«the"), byteLevelEncode("a。b"), byteLevelEncode("x—y")} {
		rs := []rune(w)
		cur := string(rs[0])
		for _, r := range rs[1:] {
			p := [2]string{cur, string(r)}
			cur += string(r)
			add(cur)
			if !seen[p] {
				seen[p] = true
				merges = append(merges, p)
			}
		}
	}
	v, _ := json.Marshal(vocab)
	m, _ := json.Marshal(merges)
	return fmt.Sprintf(`{"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
		"end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": %t, "ignore_merges": false %s, "vocab": %s, "merges": %s}`,
		byteFallback, extra, v, m), len(vocab)
}

// synthAdded is an added_tokens list that uses every flag: lstrip, rstrip, single_word, normalized. "@k" stands
// for the id vocabulary size + k, which Hugging Face assigns to the k-th token missing from the vocabulary.
const synthAdded = `[
	{"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
	{"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
	{"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
	{"id": @0, "content": "[MASK]", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": true},
	{"id": @1, "content": "word", "single_word": true, "lstrip": false, "rstrip": false, "normalized": false, "special": false},
	{"id": @2, "content": "ＡＢ", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false},
	{"id": @3, "content": "<tool>", "single_word": false, "lstrip": true, "rstrip": false, "normalized": true, "special": false},
	{"id": @4, "content": "</tool>", "single_word": false, "lstrip": false, "rstrip": true, "normalized": false, "special": true},
	{"id": @5, "content": "<tool> x", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false},
	{"id": @6, "content": "hello world", "single_word": true, "lstrip": true, "rstrip": false, "normalized": true, "special": false}
]`

// synthVariants are tokenizer.json pipelines that the real files do not use, each compared with the reference.
var synthVariants = []struct {
	name, normalizer, preTokenizer, post, decoder string
	byteFallback                                  bool
	modelExtra                                    string
}{
	{"metaspace-first", `{"type": "NFKC"}`,
		`{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}`,
		`{"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1], "trim_offsets": true, "add_prefix_space": true}`,
		`{"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}]}`,
		true, ""},
	{"metaspace-always-nosplit", `null`,
		`{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": false}`,
		`{"type": "BertProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1]}`,
		`{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": false}`,
		true, ""},
	{"metaspace-never", `{"type": "NFD"}`,
		`{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": true}`,
		`null`,
		`{"type": "Sequence", "decoders": [{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": true}, {"type": "ByteFallback"}, {"type": "Fuse"}]}`,
		true, ""},
	{"split-behaviors", `{"type": "Sequence", "normalizers": [{"type": "Strip", "strip_left": true, "strip_right": true}, {"type": "Replace", "pattern": {"Regex": "[0-9]"}, "content": "#"}]}`,
		`{"type": "Sequence", "pretokenizers": [
			{"type": "Split", "pattern": {"String": ","}, "behavior": "Removed", "invert": false},
			{"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": false},
			{"type": "Split", "pattern": {"Regex": "[aeiou]+"}, "behavior": "MergedWithNext", "invert": false},
			{"type": "Split", "pattern": {"Regex": "\\p{P}"}, "behavior": "Contiguous", "invert": true}]}`,
		`{"type": "Sequence", "processors": [{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
			{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
			 "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
			 "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}, "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}]}`,
		`{"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"Regex": "[aeiou]"}, "content": "*"}, {"type": "ByteFallback"}, {"type": "Strip", "content": "h", "start": 2, "stop": 0}, {"type": "Fuse"}]}`,
		true, ""},
	{"digits-whitespace", `{"type": "Prepend", "prepend": "▁"}`,
		`{"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": true}, {"type": "Split", "pattern": {"String": "▁"}, "behavior": "Isolated", "invert": true}]}`,
		`null`,
		`{"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}`,
		true, ""},
	{"digits-contiguous", `{"type": "NFKD"}`,
		`{"type": "Digits", "individual_digits": false}`,
		`null`,
		`null`,
		false, ""},
	{"bytelevel-prefix-space", `null`,
		`{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}`,
		`{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}`,
		`{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}`,
		false, ""},
	{"bytelevel-noregex-ignore-merges", `{"type": "NFC"}`,
		`{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}`,
		`null`,
		`{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}`,
		false, `, "ignore_merges": true`},
	{"punctuation", `null`,
		`{"type": "Sequence", "pretokenizers": [{"type": "Punctuation", "behavior": "Contiguous"}, {"type": "Punctuation"}, {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}`,
		`null`, `{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}`, false, ""},
	{"unk-no-fuse", `null`, `{"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": false}`,
		`null`, `null`, false, `, "fuse_unk": false`},
}

func synthFile(t *testing.T, name string) string {
	for _, v := range synthVariants {
		if v.name != name {
			continue
		}
		model, size := synthModel(v.byteFallback, v.modelExtra)
		added := synthAdded
		for k := 0; k < 7; k++ {
			added = strings.ReplaceAll(added, fmt.Sprintf(`"id": @%d,`, k), fmt.Sprintf(`"id": %d,`, size+k))
		}
		if strings.Contains(v.modelExtra, "fuse_unk") {
			model = strings.Replace(model, `"fuse_unk": true, `, "", 1)
		}
		if strings.Contains(v.modelExtra, "ignore_merges") {
			model = strings.Replace(model, `, "ignore_merges": false`, "", 1)
		}
		js := fmt.Sprintf(`{"version": "1.0", "truncation": null, "padding": null, "added_tokens": %s, "normalizer": %s,
			"pre_tokenizer": %s, "post_processor": %s, "decoder": %s, "model": %s}`,
			added, v.normalizer, v.preTokenizer, v.post, v.decoder, model)
		var check any
		if err := json.Unmarshal([]byte(js), &check); err != nil {
			t.Fatalf("variant %s is not JSON: %v", name, err)
		}
		p := filepath.Join(t.TempDir(), "tokenizer.json")
		if err := os.WriteFile(p, []byte(js), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Fatalf("no variant %s", name)
	return ""
}

// TestHFSyntheticComponentsMatchReference compares the components and flags the real files do not exercise
// (Metaspace's prepend schemes, split behaviours and invert, Digits, Strip/Replace decoders, lstrip/rstrip/
// single_word/normalized added tokens, Roberta/Bert/Sequence post-processors, unk without fuse) with Hugging
// Face's Rust tokenizers on generated strings.
func TestHFSyntheticComponentsMatchReference(t *testing.T) {
	dir := tokref(t)
	extra := []string{"", " ", "a [MASK] b", "a[MASK]b", "  [MASK]  [MASK]  ", "word", "a word b", "awordb", "word_x",
		"_word", "ＡＢ", "AB", "x ＡＢ y", " <tool> x", "<tool> x", "a  <tool>", "</tool>   z", "hello world", "ahello world",
		"hello worlds", " hello world", "Hello, world! 123 4567", "▁▁x", "é e\u0301", "ﬁ ①②", "\u3000x\u00a0y",
		"a,b a.b", "«the» the«", "a。b x—y", "a,,b x——y"}
	for _, v := range synthVariants {
		t.Run(v.name, func(t *testing.T) {
			file := synthFile(t, v.name)
			tok, err := LoadHFFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var specials []string
			for _, a := range tok.AddedTokens() {
				specials = append(specials, a.Content)
			}
			strs := append(extra, generateStrings(generatedSeed+1, 300, specials)...)
			ref := runRef(t, dir, file, strs)
			bad := 0
			for i, s := range strs {
				r := ref[i]
				got := tok.Encode(s)
				gotS := tok.EncodeWithSpecial(s)
				dec, decS := tok.DecodeWithSpecial(r.IDs), tok.Decode(r.IDsSpecial)
				if !equalIDs(got, r.IDs) || !equalIDs(gotS, r.IDsSpecial) || dec != r.Decoded || decS != r.DecodedSkip {
					bad++
					if bad <= 5 {
						t.Errorf("%q:\n ids %v\nwant %v\n special %v\nwant %v\n decoded %q\nwant %q\n skip %q\nwant %q",
							s, got, r.IDs, gotS, r.IDsSpecial, dec, r.Decoded, decS, r.DecodedSkip)
					}
				}
			}
			if bad > 0 {
				t.Fatalf("%s: %d of %d strings differ from Hugging Face tokenizers", v.name, bad, len(strs))
			}
		})
	}
}
