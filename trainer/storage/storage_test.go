package storage

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/storage/s3test"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// roundTrip uploads a directory, lists it, and downloads it again through l.
func roundTrip(t *testing.T, l *Location) {
	ctx := context.Background()
	src := t.TempDir()
	files := map[string]string{"model.safetensors": "weights", "config.json": "{}", "COMPLETE": "{\"files\":{}}", "sub/x.txt": "x"}
	writeFiles(t, src, files)
	if err := l.UploadDir(ctx, src, "checkpoints/step-00000002", "COMPLETE"); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, src, map[string]string{"metrics.jsonl": "{\"step\":1}\n"})
	if err := l.UploadFile(ctx, filepath.Join(src, "metrics.jsonl"), "metrics.jsonl"); err != nil {
		t.Fatal(err)
	}
	top, err := l.List(ctx, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"checkpoints/", "metrics.jsonl"}; !reflect.DeepEqual(top, want) {
		t.Errorf("List top = %q, want %q", top, want)
	}
	steps, err := l.List(ctx, "checkpoints", false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"step-00000002/"}; !reflect.DeepEqual(steps, want) {
		t.Errorf("List checkpoints = %q, want %q", steps, want)
	}
	dst := t.TempDir()
	n, err := l.DownloadDir(ctx, "checkpoints/step-00000002", dst)
	if err != nil || n != len(files) {
		t.Fatalf("DownloadDir = %d, %v; want %d files", n, err, len(files))
	}
	if got := readTree(t, dst); !reflect.DeepEqual(got, files) {
		t.Errorf("downloaded %v, want %v", got, files)
	}
	ok, err := l.Exists(ctx, "checkpoints/step-00000002/COMPLETE")
	if err != nil || !ok {
		t.Errorf("Exists(COMPLETE) = %v, %v", ok, err)
	}
	if mt, err := l.ModTime(ctx, "metrics.jsonl"); err != nil || mt == "" {
		t.Errorf("ModTime = %q, %v", mt, err)
	}
	err = l.DownloadFile(ctx, "missing.json", filepath.Join(dst, "m"))
	if err == nil || !IsNotExist(err) {
		t.Errorf("missing object: %v, want a not-exist error", err)
	}
	if err := l.Delete(ctx, "metrics.jsonl"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := l.Exists(ctx, "metrics.jsonl"); ok {
		t.Error("metrics.jsonl still exists after Delete")
	}
}

func TestS3RoundTrip(t *testing.T) {
	srv := s3test.Start(t, "runs")
	l, err := Open(context.Background(), srv.URI("runs", "team/run-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Local() != "" {
		t.Errorf("s3 Location has local path %q", l.Local())
	}
	roundTrip(t, l)
	// The objects are where the URI says: under the prefix, not at the bucket's root.
	root, err := Open(context.Background(), srv.URI("runs", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if ok, err := root.Exists(context.Background(), "team/run-1/checkpoints/step-00000002/COMPLETE"); err != nil || !ok {
		t.Errorf("object not under the prefix: %v %v", ok, err)
	}
}

func TestFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(context.Background(), "file://"+dir+"/out")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Local() != dir+"/out" {
		t.Errorf("Local = %q", l.Local())
	}
	roundTrip(t, l)
	// file:// writes in place, without metadata sidecar files.
	got := readTree(t, dir+"/out/checkpoints/step-00000002")
	if len(got) != 4 {
		t.Errorf("files in place: %v", got)
	}
}

// TestUploadDirCompleteLast checks the marker is stored after every other file: the fake store records the order.
func TestUploadDirCompleteLast(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a": "1", "COMPLETE": "m", "z": "2", "state.json": "{}"})
	l, err := Open(context.Background(), "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var order []string
	uploadHook = func(key string) { order = append(order, filepath.Base(key)) }
	defer func() { uploadHook = nil }()
	if err := l.UploadDir(context.Background(), src, "c", "COMPLETE"); err != nil {
		t.Fatal(err)
	}
	if len(order) != 4 || order[3] != "COMPLETE" {
		t.Errorf("upload order %q, want COMPLETE last", order)
	}
}

func TestParse(t *testing.T) {
	good := map[string]string{
		"s3://b/p/q?region=eu-west-1":  "s3://b/p/q?region=eu-west-1",
		"s3://b//p/../q/":              "s3://b/q",
		"gs://bucket":                  "gs://bucket",
		"azblob://container/dir":       "azblob://container/dir",
		"file:///a/b/":                 "file:///a/b",
		"file://localhost/a":           "file:///a",
		"/abs/path":                    "file:///abs/path",
		"s3://b/p?endpoint=http://h:1": "s3://b/p?endpoint=http://h:1",
	}
	for in, want := range good {
		u, err := Parse(in)
		if err != nil || u.String() != want {
			t.Errorf("Parse(%q) = %v, %v; want %q", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "ftp://x/y", "s3:///nobucket", "file://host/a", "s3://AKIA:p4ssw0rdXYZ@b/p", "https://example.com/d.jsonl"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "p4ssw0rdXYZ") {
			t.Errorf("Parse(%q) error quotes the password: %v", bad, err)
		}
	}
}

func TestURI(t *testing.T) {
	l := &Location{}
	u, _ := Parse("s3://b/run?endpoint=http://127.0.0.1:1&region=r")
	l.uri = u
	if got, want := l.URI("model"), "s3://b/run/model?endpoint=http://127.0.0.1:1&region=r"; got != want {
		t.Errorf("URI = %q, want %q", got, want)
	}
}

// TestSecretsNeverInErrors: with credentials in the environment, failures (bad options, an unreachable endpoint,
// a missing bucket) never quote the secret.
func TestSecretsNeverInErrors(t *testing.T) {
	srv := s3test.Start(t, "runs")
	ctx := context.Background()
	var errs []error
	if _, err := Open(ctx, "s3://runs/p?bogus_option=1&endpoint="+srv.Endpoint); err != nil {
		errs = append(errs, err)
	} else {
		t.Error("unknown option accepted")
	}
	for _, uri := range []string{
		"s3://runs/p?endpoint=http://127.0.0.1:1&region=us-east-1&use_path_style=true", // nothing listens
		srv.URI("no-such-bucket", "p"),
	} {
		l, err := Open(ctx, uri)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := l.DownloadFile(ctx, "x", filepath.Join(t.TempDir(), "x")); err != nil {
			errs = append(errs, err)
		} else {
			t.Errorf("%s: download succeeded", uri)
		}
		if err := l.UploadFile(ctx, "storage_test.go", "x"); err != nil {
			errs = append(errs, err)
		}
		l.Close()
	}
	if len(errs) < 3 {
		t.Fatalf("only %d errors", len(errs))
	}
	for _, err := range errs {
		if strings.Contains(err.Error(), s3test.SecretKey) {
			t.Errorf("error quotes the secret: %v", err)
		}
	}
	// And scrub removes it should a driver ever quote it.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "verysecretvalue")
	if got := scrub(errString("auth failed for verysecretvalue")); strings.Contains(got.Error(), "verysecretvalue") {
		t.Errorf("scrub kept the secret: %v", got)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestDeleteDir removes a checkpoint directory, COMPLETE first, in S3 and on a file:// location, and leaves its
// neighbours alone.
func TestDeleteDir(t *testing.T) {
	srv := s3test.Start(t, "runs")
	for _, uri := range []string{srv.URI("runs", "team/run-1"), "file://" + t.TempDir() + "/out"} {
		t.Run(strings.SplitN(uri, ":", 2)[0], func(t *testing.T) {
			ctx := context.Background()
			l, err := Open(ctx, uri)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			src := t.TempDir()
			writeFiles(t, src, map[string]string{"model.safetensors": "w", "COMPLETE": "{}", "state.json": "{}", "sub/x": "x"})
			for _, d := range []string{"checkpoints/step-00000001", "checkpoints/step-00000002"} {
				if err := l.UploadDir(ctx, src, d, "COMPLETE"); err != nil {
					t.Fatal(err)
				}
			}
			var order []string
			deleteHook = func(key string) { order = append(order, filepath.Base(key)) }
			defer func() { deleteHook = nil }()
			n, err := l.DeleteDir(ctx, "checkpoints/step-00000001", "COMPLETE")
			if err != nil || n != 4 {
				t.Fatalf("DeleteDir = %d, %v; want 4 objects", n, err)
			}
			if len(order) != 4 || order[0] != "COMPLETE" {
				t.Errorf("delete order %q, want COMPLETE first", order)
			}
			steps, err := l.List(ctx, "checkpoints", false)
			if err != nil || !reflect.DeepEqual(steps, []string{"step-00000002/"}) {
				t.Errorf("checkpoints left: %q, %v; want only step-00000002/", steps, err)
			}
			if ok, _ := l.Exists(ctx, "checkpoints/step-00000002/COMPLETE"); !ok {
				t.Error("the neighbour lost its COMPLETE")
			}
			if local := l.Local(); local != "" {
				if _, err := os.Stat(filepath.Join(local, "checkpoints", "step-00000001")); !os.IsNotExist(err) {
					t.Errorf("file:// directory still there: %v", err)
				}
			}
			if n, err := l.DeleteDir(ctx, "checkpoints/step-00000009", "COMPLETE"); err != nil || n != 0 {
				t.Errorf("missing directory: %d, %v", n, err)
			}
		})
	}
}
