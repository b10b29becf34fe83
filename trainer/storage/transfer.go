package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// deleteHook, when set (tests), sees each key DeleteDir is about to delete.
var deleteHook func(key string)

// uploadHook, when set (tests), sees each key before it is uploaded.
var uploadHook func(key string)

func isBlobNotFound(err error) bool { return gcerrors.Code(err) == gcerrors.NotFound }

// Exists reports whether the object rel exists.
func (l *Location) Exists(ctx context.Context, rel string) (bool, error) {
	ok, err := l.bucket.Exists(ctx, l.key(rel))
	if err != nil {
		return false, scrub(fmt.Errorf("%s: %w", l.URI(rel), err))
	}
	return ok, nil
}

// DownloadFile copies the object rel ("" for the Location itself) to the local file dst, through a temporary file
// so that dst is never half written. A missing object is an error for which IsNotExist is true.
func (l *Location) DownloadFile(ctx context.Context, rel, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	r, err := l.bucket.NewReader(ctx, l.key(rel), nil)
	if err != nil {
		return scrub(fmt.Errorf("reading %s: %w", l.URI(rel), err))
	}
	defer r.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return scrub(fmt.Errorf("reading %s: %w", l.URI(rel), err))
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// List returns the keys under the directory rel, relative to it, sorted. With recursive false it lists one level
// and subdirectories end in "/".
func (l *Location) List(ctx context.Context, rel string, recursive bool) ([]string, error) {
	prefix := l.key(rel)
	if prefix != "" {
		prefix += "/"
	}
	opts := &blob.ListOptions{Prefix: prefix}
	if !recursive {
		opts.Delimiter = "/"
	}
	var out []string
	it := l.bucket.List(opts)
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, scrub(fmt.Errorf("listing %s: %w", l.URI(rel), err))
		}
		out = append(out, strings.TrimPrefix(o.Key, prefix))
	}
	sort.Strings(out)
	return out, nil
}

// DownloadDir copies every object under the directory rel into the local directory dst (created), keeping the
// relative paths. It returns how many files it copied; an empty or missing directory copies none.
func (l *Location) DownloadDir(ctx context.Context, rel, dst string) (int, error) {
	keys, err := l.List(ctx, rel, true)
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if strings.HasSuffix(k, "/") {
			continue // a directory marker some stores keep
		}
		target := filepath.Join(dst, filepath.FromSlash(k))
		if !strings.HasPrefix(target, filepath.Clean(dst)+string(filepath.Separator)) {
			return 0, fmt.Errorf("%s: key %q leaves the directory", l.URI(rel), k)
		}
		if err := l.DownloadFile(ctx, joinRel(rel, k), target); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// UploadFile copies the local file src to the object rel, replacing it.
func (l *Location) UploadFile(ctx context.Context, src, rel string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	if uploadHook != nil {
		uploadHook(l.key(rel))
	}
	if err := l.bucket.Upload(ctx, l.key(rel), f, &blob.WriterOptions{ContentType: contentType(src)}); err != nil {
		return scrub(fmt.Errorf("writing %s: %w", l.URI(rel), err))
	}
	return nil
}

// UploadDir copies every file under the local directory src to the directory rel. The file named last (when it
// is in src: the checkpoint's COMPLETE marker) goes up only after all the others are stored, so that a reader that
// finds it finds the whole directory.
func (l *Location) UploadDir(ctx context.Context, src, rel, last string) error {
	var files []string
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		r, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		files = append(files, filepath.ToSlash(r))
		return nil
	})
	if err != nil {
		return err
	}
	sort.SliceStable(files, func(i, j int) bool { return files[j] == last && files[i] != last })
	for _, f := range files {
		if err := l.UploadFile(ctx, filepath.Join(src, filepath.FromSlash(f)), joinRel(rel, f)); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the object rel; a missing object is not an error.
func (l *Location) Delete(ctx context.Context, rel string) error {
	err := l.bucket.Delete(ctx, l.key(rel))
	if err != nil && !isBlobNotFound(err) {
		return scrub(fmt.Errorf("deleting %s: %w", l.URI(rel), err))
	}
	return nil
}

// DeleteDir removes every object under the directory rel and returns how many it removed. The object named first
// (a checkpoint's COMPLETE marker) goes before the others, so that a deletion cut short never leaves a directory
// that looks complete. For a file:// Location the emptied directory is removed too. A missing directory removes
// nothing and is not an error.
func (l *Location) DeleteDir(ctx context.Context, rel, first string) (int, error) {
	keys, err := l.List(ctx, rel, true)
	if err != nil {
		return 0, err
	}
	sort.SliceStable(keys, func(i, j int) bool { return keys[i] == first && keys[j] != first })
	n := 0
	for _, k := range keys {
		if deleteHook != nil {
			deleteHook(l.key(joinRel(rel, k)))
		}
		if err := l.Delete(ctx, joinRel(rel, k)); err != nil {
			return n, err
		}
		n++
	}
	if l.local != "" && strings.Trim(rel, "/") != "" {
		dir := filepath.Join(l.local, filepath.FromSlash(strings.Trim(rel, "/")))
		if err := os.RemoveAll(dir); err != nil {
			return n, fmt.Errorf("removing %s: %w", l.URI(rel), err)
		}
	}
	return n, nil
}

// ModTime is the object's modification time as RFC 3339 ("" when the store does not say).
func (l *Location) ModTime(ctx context.Context, rel string) (string, error) {
	a, err := l.bucket.Attributes(ctx, l.key(rel))
	if err != nil {
		return "", scrub(fmt.Errorf("%s: %w", l.URI(rel), err))
	}
	if a.ModTime.IsZero() {
		return "", nil
	}
	return a.ModTime.UTC().Format("2006-01-02T15:04:05Z07:00"), nil
}

func joinRel(a, b string) string {
	a, b = strings.Trim(a, "/"), strings.Trim(b, "/")
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "/" + b
}

func contentType(name string) string {
	switch filepath.Ext(name) {
	case ".json":
		return "application/json"
	case ".jsonl":
		return "application/jsonl"
	case ".svg":
		return "image/svg+xml"
	}
	return "application/octet-stream"
}
