package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
)

// inspectRun runs the command with a termination log in a temporary folder and returns the exit code, stdout,
// stderr and the termination message.
func inspectRun(t *testing.T, args ...string) (int, string, string, contract.TerminationMessage) {
	t.Helper()
	term := filepath.Join(t.TempDir(), "termination-log")
	var out, errb bytes.Buffer
	code := inspectDataset(append([]string{"--termination-log", term}, args...), &out, &errb)
	var msg contract.TerminationMessage
	if b, err := os.ReadFile(term); err == nil {
		if len(b) > contract.MaxTerminationMessageBytes {
			t.Fatalf("termination message of %d bytes", len(b))
		}
		if err := json.Unmarshal(b, &msg); err != nil {
			t.Fatalf("termination message %s: %v", b, err)
		}
	}
	return code, out.String(), errb.String(), msg
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInspectDatasetRegistered(t *testing.T) {
	for _, name := range []string{"inspect-dataset", "demo-data"} {
		if _, ok := commands[name]; !ok {
			t.Fatalf("command %s is not registered", name)
		}
	}
}

func TestInspectDatasetFlagsAndConfigAgree(t *testing.T) {
	demo := filepath.Join(t.TempDir(), "demo.jsonl")
	if code := demoData([]string{"--out", demo, "--n", "300", "--seed", "4"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatalf("demo-data exit %d", code)
	}
	code, stdout, stderr, msg := inspectRun(t, "--data", demo, "--eval-fraction", "0.2", "--seed", "3")
	if code != contract.ExitOK {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	var rep contract.DatasetReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not a report: %v\n%s", err, stdout)
	}
	if rep.Format != "standard" || rep.Counts.Pairs != 300 || rep.Counts.Eval == 0 || rep.Counts.Invalid != 0 {
		t.Fatalf("report %+v", rep)
	}
	if msg.Dataset == nil || msg.Error != nil || msg.Dataset.Digest != rep.Digest {
		t.Fatalf("termination message %+v", msg)
	}

	cfg := fmt.Sprintf(`{"apiVersion":%q,"kind":"inspect","dataset":{"uri":"file://%s","format":"auto","evalFraction":0.2,"seed":3,"digest":%q}}`,
		contract.APIVersion, demo, rep.Digest)
	code, stdout2, stderr, msg := inspectRun(t, "--config", writeFile(t, "inspect.json", cfg))
	if code != contract.ExitOK || stdout2 != stdout {
		t.Fatalf("config form: exit %d stderr %s; report differs: %v", code, stderr, stdout2 != stdout)
	}
	if msg.Dataset == nil || msg.Dataset.Counts != rep.Counts {
		t.Fatalf("config form termination %+v", msg)
	}
}

func TestInspectDatasetInvalidRows(t *testing.T) {
	p := writeFile(t, "bad.jsonl", `{"prompt":"p","chosen":"c","rejected":"r"}
{"prompt":"p","chosen":"c"}
{"prompt":"p","chosen":"c","rejected":
`)
	code, stdout, stderr, msg := inspectRun(t, "--data", p)
	if code != contract.ExitInvalidInput {
		t.Fatalf("exit %d, want %d", code, contract.ExitInvalidInput)
	}
	if msg.Dataset == nil || msg.Dataset.Counts.Invalid != 2 || len(msg.Dataset.InvalidRows) != 2 {
		t.Fatalf("termination %+v", msg)
	}
	rows := msg.Dataset.InvalidRows
	if rows[0].Line != 2 || rows[0].Field != "rejected" || rows[1].Line != 3 || !strings.Contains(rows[1].Reason, "invalid JSON") {
		t.Fatalf("invalid rows %+v", rows)
	}
	if !strings.Contains(stdout, `"invalid": 2`) || !strings.Contains(stderr, "line 2, field rejected: missing field") {
		t.Fatalf("stdout %s\nstderr %s", stdout, stderr)
	}
}

func TestInspectDatasetErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, "good.jsonl", `{"text":"hello"}`+"\n")
	cfg := func(body string) string { return writeFile(t, "c.json", body) }
	cases := []struct {
		name   string
		args   []string
		code   int
		reason string // "" when no termination message is expected
	}{
		{"not a dataset", []string{"--data", writeFile(t, "x.txt", "hello world\n")}, contract.ExitInvalidInput, "InvalidDataset"},
		{"missing file", []string{"--data", filepath.Join(dir, "absent.jsonl")}, contract.ExitInvalidInput, "InvalidDataset"},
		{"a directory", []string{"--data", dir}, contract.ExitInvalidInput, "InvalidDataset"},
		{"unknown format", []string{"--data", good, "--format", "csv"}, contract.ExitInvalidInput, "InvalidDataset"},
		{"other scheme", []string{"--data", "s3://bucket/x.jsonl"}, contract.ExitInvalidInput, "InvalidConfig"},
		{"remote host", []string{"--data", "file://server" + good}, contract.ExitInvalidInput, "InvalidConfig"},
		{"bad fraction", []string{"--data", good, "--eval-fraction", "1.5"}, contract.ExitInvalidInput, "InvalidConfig"},
		{"digest changed", []string{"--data", good, "--digest", "sha256:00"}, contract.ExitInvalidInput, "DatasetChanged"},
		{"wrong apiVersion", []string{"--config", cfg(`{"apiVersion":"v0","kind":"inspect","dataset":{"uri":"` + good + `"}}`)}, contract.ExitInvalidInput, "InvalidConfig"},
		{"wrong kind", []string{"--config", cfg(`{"apiVersion":"` + contract.APIVersion + `","kind":"sft","dataset":{"uri":"` + good + `"}}`)}, contract.ExitInvalidInput, "InvalidConfig"},
		{"unknown field", []string{"--config", cfg(`{"apiVersion":"` + contract.APIVersion + `","kind":"inspect","datasett":{}}`)}, contract.ExitInvalidInput, "InvalidConfig"},
		{"no input", nil, contract.ExitUsage, ""},
		{"config and flags", []string{"--config", good, "--data", good}, contract.ExitUsage, ""},
		{"bad flag", []string{"--nope"}, contract.ExitUsage, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, _, msg := inspectRun(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d", code, c.code)
			}
			if c.reason == "" {
				if msg.Error != nil || msg.Dataset != nil {
					t.Fatalf("usage error wrote a termination message %+v", msg)
				}
				return
			}
			if msg.Error == nil || msg.Error.Reason != c.reason || msg.Error.Message == "" || msg.Dataset != nil {
				t.Fatalf("termination %+v, want error reason %s", msg, c.reason)
			}
			if stdout != "" {
				t.Fatalf("a failed inspection printed a report: %s", stdout)
			}
		})
	}
}

func TestInspectDatasetRealFile(t *testing.T) {
	p := "../../../shared/data/llama-factory-demo/dpo_zh_demo.json"
	if _, err := os.Stat(p); err != nil {
		t.Skipf("real dataset %s is absent: skipping", p)
	}
	code, _, stderr, msg := inspectRun(t, "--data", "file://localhost"+mustAbs(t, p), "--eval-fraction", "0.1")
	if code != contract.ExitOK || msg.Dataset == nil {
		t.Fatalf("exit %d stderr %s", code, stderr)
	}
	if msg.Dataset.Format != "sharegpt" || msg.Dataset.Counts.Pairs != 300 {
		t.Fatalf("report %+v", msg.Dataset)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
