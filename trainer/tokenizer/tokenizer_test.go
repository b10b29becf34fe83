package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestByteRoundTripMultibyte(t *testing.T) {
	tok := NewByte()
	for _, s := range []string{"", "12+7=19", "héllo", "中文测试", "emoji 🙂\n\t"} {
		ids := tok.Encode(s)
		if len(ids) != len(s) {
			t.Fatalf("Encode(%q): %d ids, want one per byte (%d)", s, len(ids), len(s))
		}
		for _, id := range ids {
			if id < 0 || id > 255 {
				t.Fatalf("Encode(%q) produced id %d outside the byte range", s, id)
			}
		}
		if got := tok.Decode(ids); got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
	}
	if got := tok.Encode("é"); got[0] != 0xC3 || got[1] != 0xA9 {
		t.Fatalf("Encode(é) = %v, want the UTF-8 bytes C3 A9", got)
	}
}

func TestByteSpecialIDs(t *testing.T) {
	tok := NewByte()
	if tok.VocabSize() != 259 || tok.BOS() != 256 || tok.EOS() != 257 || tok.PAD() != 258 {
		t.Fatalf("layout %d/%d/%d/%d, DESIGN.md says 259/256/257/258", tok.VocabSize(), tok.BOS(), tok.EOS(), tok.PAD())
	}
	ids := append([]int{tok.BOS()}, tok.Encode("ab")...)
	ids = append(ids, tok.EOS(), tok.PAD(), tok.PAD())
	if got := tok.Decode(ids); got != "ab" {
		t.Fatalf("Decode with specials = %q, want %q", got, "ab")
	}
	if got := tok.Decode([]int{'a', 999, -1}); got != "a\uFFFD\uFFFD" {
		t.Fatalf("Decode of out-of-vocabulary ids = %q, want replacement characters", got)
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	if err := Save(dir, NewByte()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"type": "byte"`, `"vocab_size": 259`, `"bos": 256`, `"eos": 257`, `"pad": 258`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("tokenizer.json %s lacks %s", b, want)
		}
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Name() != "byte" || tok.VocabSize() != 259 {
		t.Fatalf("loaded %s/%d", tok.Name(), tok.VocabSize())
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	cases := map[string]string{
		`{"type":"bpe","vocab_size":259,"bos":256,"eos":257,"pad":258}`:  "field type",
		`{"type":"byte","vocab_size":300,"bos":256,"eos":257,"pad":258}`: "field vocab_size",
		`{"type":"byte","vocab_size":259,"bos":256,"eos":257,"pad":0}`:   "field pad",
		`{"type":`: "tokenizer.json",
	}
	for content, want := range cases {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Load(%s) error %v, want one mentioning %q", content, err, want)
		}
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Fatal("Load of a directory without tokenizer.json succeeded")
	}
}
