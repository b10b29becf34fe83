package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/tokenizer"
)

func tokenizeRun(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := tokenizeCmd(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestTokenizeStories260K(t *testing.T) {
	dir := "../../../shared/models/stories260K"
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Skipf("%s is absent (../shared is the project's read-only test data beside the repository): %v", dir, err)
	}
	code, stdout, stderr := tokenizeRun(t, "Once upon a time", "--model", dir, "--special", "--json")
	if code != contract.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out tokenizeOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%s: %v", stdout, err)
	}
	// tokenizer_cases.json's first case (llama2.c's encoder).
	if !reflect.DeepEqual(out.IDs, []int{1, 403, 407, 261, 378}) ||
		!reflect.DeepEqual(out.Pieces, []string{"<s>", "▁Once", "▁upon", "▁a", "▁time"}) || out.Decoded != "<s> Once upon a time" {
		t.Fatalf("got %+v", out)
	}
	code, stdout, _ = tokenizeRun(t, "Once upon", "--model", dir)
	if code != contract.ExitOK || !strings.Contains(stdout, `"▁Once"`) || strings.Contains(stdout, `"<s>"`) ||
		!regexp.MustCompile(`"▁upon"\s+" upon"\n`).MatchString(stdout) ||
		!strings.Contains(stdout, "2 tokens for 9 bytes (huggingface, vocabulary 512); decodes back to the input") {
		t.Fatalf("table output:\n%s", stdout)
	}
}

func TestTokenizeByteModels(t *testing.T) {
	hf := t.TempDir()
	if err := tokenizer.WriteByteHF(hf, 64); err != nil {
		t.Fatal(err)
	}
	legacy := t.TempDir()
	if err := tokenizer.Save(legacy, tokenizer.NewByte()); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{hf, legacy} {
		code, stdout, stderr := tokenizeRun(t, "hé\n", "--model", dir, "--json", "--special")
		if code != contract.ExitOK {
			t.Fatalf("%s: exit %d: %s", dir, code, stderr)
		}
		var out tokenizeOutput
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(out.IDs, []int{256, 'h', 0xC3, 0xA9, '\n'}) ||
			!reflect.DeepEqual(out.Pieces, []string{"<|bos|>", "<0x68>", "<0xC3>", "<0xA9>", "<0x0A>"}) {
			t.Fatalf("%s: %+v", dir, out)
		}
	}
}

func TestTokenizeErrors(t *testing.T) {
	if code, _, stderr := tokenizeRun(t, "x"); code != contract.ExitUsage || !strings.Contains(stderr, "--model is required") {
		t.Fatalf("no --model: exit %d, %s", code, stderr)
	}
	dir := t.TempDir()
	bad := `{"model": {"type": "Unigram", "vocab": []}, "added_tokens": []}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := tokenizeRun(t, "x", "--model", dir)
	if code != contract.ExitInvalidInput || !strings.Contains(stderr, `model type "Unigram" is not supported`) {
		t.Fatalf("unsupported model: exit %d, %s", code, stderr)
	}
	if _, ok := commands["tokenize"]; !ok {
		t.Fatal("tokenize is not registered")
	}
}

func TestTokenizeSpecialTokenText(t *testing.T) {
	dir := t.TempDir()
	if err := tokenizer.WriteByteHF(dir, 64); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := tokenizeRun(t, "a<|eos|>", "--model", dir)
	if code != contract.ExitOK || !strings.Contains(stdout, "2 tokens for 8 bytes") ||
		!strings.Contains(stdout, "decodes back to the input (special tokens kept)") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr: %s", code, stdout, stderr)
	}
}
