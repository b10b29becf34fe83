package storage

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// IsHTTP reports whether uri is an https:// (or http://) URL, which the trainer accepts for datasets only.
func IsHTTP(uri string) bool {
	return strings.HasPrefix(uri, "https://") || strings.HasPrefix(uri, "http://")
}

// Fetch downloads a dataset served over HTTP(S) to the local file dst. The URL's query may hold a signature (a
// presigned URL), so messages name the URL without it.
func Fetch(ctx context.Context, client *http.Client, uri, dst string) error {
	if client == nil {
		client = http.DefaultClient
	}
	shown := Redact(uri)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return fmt.Errorf("%s: %v", shown, stripURL(err))
	}
	resp, err := client.Do(req)
	if err != nil {
		return scrub(fmt.Errorf("fetching %s: %v", shown, stripURL(err)))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("fetching %s: %s: %w", shown, resp.Status, os.ErrNotExist)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching %s: %s", shown, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("fetching %s: %v", shown, err)
	}
	return f.Close()
}
