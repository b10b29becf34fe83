package storage

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFetch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/data.jsonl":
			w.Write([]byte("{\"prompt\":\"a\"}\n"))
		case "/missing.jsonl":
			http.NotFound(w, r)
		default:
			http.Error(w, "no", http.StatusForbidden)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	dst := filepath.Join(t.TempDir(), "d", "data.jsonl")
	if err := Fetch(ctx, srv.Client(), srv.URL+"/data.jsonl?X-Amz-Signature=abc123sig", dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "{\"prompt\":\"a\"}\n" {
		t.Errorf("fetched %q", b)
	}
	err := Fetch(ctx, srv.Client(), srv.URL+"/missing.jsonl", dst)
	if !IsNotExist(err) {
		t.Errorf("404: %v, want a not-exist error", err)
	}
	// A presigned URL's signature is not repeated in the error.
	err = Fetch(ctx, srv.Client(), srv.URL+"/forbidden?X-Amz-Signature=abc123sig", dst)
	if err == nil || IsNotExist(err) || !strings.Contains(err.Error(), "403") || strings.Contains(err.Error(), "abc123sig") {
		t.Errorf("403: %v", err)
	}
}
