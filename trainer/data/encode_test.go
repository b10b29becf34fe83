package data

import (
	"reflect"
	"testing"

	"github.com/preftune/preftune/trainer/tokenizer"
)

func toks(s string) []int { return tokenizer.NewByte().Encode(s) }

func seq(parts ...any) []int {
	var out []int
	for _, p := range parts {
		switch v := p.(type) {
		case int:
			out = append(out, v)
		case string:
			out = append(out, toks(v)...)
		case []int:
			out = append(out, v...)
		}
	}
	return out
}

const bos, eos, pad = tokenizer.ByteBOS, tokenizer.ByteEOS, tokenizer.BytePAD

func TestEncodeTruncation(t *testing.T) {
	tok := tokenizer.NewByte()
	cases := []struct {
		name, prompt, response string
		ctx                    int
		want                   []int
		start                  int
	}{
		{"fits", "ab", "cd", 8, seq(bos, "abcd", eos), 3},
		{"exactly fits", "ab", "cd", 6, seq(bos, "abcd", eos), 3},
		{"prompt loses its start", "abcdef", "xy", 6, seq(bos, "ef", "xy", eos), 3},
		{"prompt dropped entirely", "abc", "wxyz", 6, seq(bos, "wxyz", eos), 1},
		{"response cut at its end, no EOS", "abc", "uvwxyz", 5, seq(bos, "uvwx"), 1},
		{"empty prompt", "", "hi", 8, seq(bos, "hi", eos), 1},
		{"multibyte prompt cut by bytes", "日本", "x", 5, seq(bos, toks("日本")[4:], "x", eos), 3},
	}
	for _, c := range cases {
		s := Encode(tok, c.prompt, c.response, c.ctx)
		if !reflect.DeepEqual(s.Tokens, c.want) || s.ResponseStart != c.start {
			t.Errorf("%s: tokens %v start %d, want %v start %d", c.name, s.Tokens, s.ResponseStart, c.want, c.start)
		}
		if len(s.Tokens) > c.ctx {
			t.Errorf("%s: %d tokens exceed the context %d", c.name, len(s.Tokens), c.ctx)
		}
	}
}

func TestBuckets(t *testing.T) {
	if got := Buckets(256); !reflect.DeepEqual(got, []int{32, 64, 128, 256}) {
		t.Fatalf("Buckets(256) = %v", got)
	}
	if got := Buckets(100); !reflect.DeepEqual(got, []int{32, 64, 100}) {
		t.Fatalf("Buckets(100) = %v", got)
	}
	if got := Buckets(16); !reflect.DeepEqual(got, []int{16}) {
		t.Fatalf("Buckets(16) = %v", got)
	}
	for _, c := range [][3]int{{1, 256, 32}, {32, 256, 32}, {33, 256, 64}, {200, 256, 256}, {70, 100, 100}} {
		if got := BucketFor(c[0], c[1]); got != c[2] {
			t.Errorf("BucketFor(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
}
