// Package durable writes files and directory entries so that they survive a crash: each file is fsynced before
// it is closed, and a directory is fsynced after names are created or renamed in it. trainer/checkpoint and
// trainer/hf write their COMPLETE-guarded and model directories with it.
package durable

import (
	"bytes"
	"io"
	"os"
)

// WriteFile writes data to path (created or truncated, mode 0644) and fsyncs it.
func WriteFile(path string, data []byte) error { return Copy(path, bytes.NewReader(data)) }

// Copy writes everything r yields to path (created or truncated, mode 0644) and fsyncs it.
func Copy(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SyncDir fsyncs a directory so that the names created or renamed in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
