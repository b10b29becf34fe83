package install

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImage builds the image with `make image`, pushes it (PUSH=1) to a registry crane serves on localhost, and
// reads it back with crane: both binaries are there, static, and the image runs as the non-root user.
func TestImage(t *testing.T) {
	addr := serveRegistry(t)
	ref := addr + "/preftune/preftune:test"
	out := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "image", "IMG="+ref, "PUSH=1")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "IMAGE_OUT="+out)
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, b)
	}
	t.Logf("make image took %s", time.Since(start).Round(time.Second))
	for _, p := range []string{"oci/index.json", "oci/oci-layout", "preftune.tar"} {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Errorf("image output: %v", err)
		}
	}

	cfgJSON, err := runCmd(craneBin, "config", ref)
	if err != nil {
		t.Fatalf("crane config: %v", err)
	}
	var config struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Config       struct {
			User       string            `json:"User"`
			Entrypoint []string          `json:"Entrypoint"`
			Labels     map[string]string `json:"Labels"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(cfgJSON), &config); err != nil {
		t.Fatalf("image config: %v\n%s", err, cfgJSON)
	}
	if config.Config.User != "65532:65532" {
		t.Errorf("image user = %q, want 65532:65532 (nonroot)", config.Config.User)
	}
	if strings.Join(config.Config.Entrypoint, " ") != "/manager" {
		t.Errorf("entrypoint = %q, want [/manager]", config.Config.Entrypoint)
	}
	if config.OS != "linux" || config.Architecture == "" {
		t.Errorf("platform = %s/%s, want linux/<arch>", config.OS, config.Architecture)
	}
	if config.Config.Labels["org.opencontainers.image.source"] == "" {
		t.Errorf("labels %v lack org.opencontainers.image.source", config.Config.Labels)
	}
	// The trainer is the OpenBLAS build wherever apt can install OpenBLAS (the pure-Go fallback is for machines
	// without it, and says so).
	if build := config.Config.Labels["io.preftune.trainer-build"]; build != "openblas" {
		if _, err := exec.LookPath("apt-get"); err == nil {
			t.Errorf("trainer build = %q, want openblas", build)
		} else {
			t.Logf("no apt-get here: the image carries the %s trainer", build)
		}
	}

	// The filesystem, flattened: both binaries, executable, static, owned by root and not writable by the user.
	var fs bytes.Buffer
	export := exec.Command(craneBin, "export", ref, "-")
	export.Stdout = &fs
	var stderr bytes.Buffer
	export.Stderr = &stderr
	if err := export.Run(); err != nil {
		t.Fatalf("crane export: %v\n%s", err, stderr.String())
	}
	files := map[string]*tar.Header{}
	contents := map[string][]byte{}
	tr := tar.NewReader(&fs)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read exported filesystem: %v", err)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		files[name] = h
		if name == "manager" || name == "preftune-trainer" {
			if contents[name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, bin := range []string{"manager", "preftune-trainer"} {
		h, ok := files[bin]
		if !ok {
			t.Errorf("/%s is not in the image (files: %v)", bin, keys(files))
			continue
		}
		if h.Mode&0o111 == 0 || h.Mode&0o022 != 0 || h.Uid != 0 {
			t.Errorf("/%s: mode %o uid %d, want executable, not group/world-writable, owned by root", bin, h.Mode, h.Uid)
		}
		if err := staticELF(contents[bin]); err != nil {
			t.Errorf("/%s: %v", bin, err)
		}
	}
	if _, ok := files["etc/ssl/certs/ca-certificates.crt"]; !ok {
		t.Error("the image has no CA bundle: the trainer cannot reach s3://, gs:// or azblob:// over HTTPS")
	}
}

// staticELF checks b is a Linux ELF executable with no dynamic loader (CGO off).
func staticELF(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("dynamically linked (has a program interpreter)")
		}
	}
	return nil
}

// serveRegistry runs `crane registry serve` on a free localhost port until the test ends and returns its address.
func serveRegistry(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(craneBin, "registry", "serve", "--address", addr)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("crane registry serve: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := runCmd(craneBin, "catalog", addr); err == nil {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("crane registry on %s did not start:\n%s", addr, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
