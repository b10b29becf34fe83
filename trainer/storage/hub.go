package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/preftune/preftune/trainer/hf"
)

// Hugging Face Hub sources: hf://org/name[@revision].
//
// A model on the Hub is downloaded through the Hub's HTTP API, so any Hub-compatible mirror works:
//
//   - the endpoint is $HF_ENDPOINT (default https://huggingface.co) and a token, when $HF_TOKEN is set, goes in
//     "Authorization: Bearer" (the operator fills HF_TOKEN from the run's secretRef; it is scrubbed from errors);
//   - GET {endpoint}/api/models/{org}/{name}/revision/{revision}?blobs=true resolves the revision (a branch, tag or
//     commit; default "main") to its commit sha and lists the repository's files with their sizes and, for LFS
//     files, their sha256;
//   - GET {endpoint}/{org}/{name}/resolve/{sha}/{file} downloads each file at that commit, so every file comes
//     from the same commit even if the branch moves meanwhile.
//
// Only what training needs is downloaded: config.json, the safetensors weights (model.safetensors, or
// model.safetensors.index.json and the shards it names), and the tokenizer and generation files of HubFiles;
// everything else (pytorch_model.bin, consolidated.safetensors, ONNX, GGUF, README...) is skipped and listed.
// A PEFT adapter repository (DownloadAdapter) brings adapter_config.json, adapter_model.safetensors and its
// tokenizer files and chat template only. Each file's size, and the sha256 of LFS files, is checked against the listing.

// HubScheme is the URI scheme of Hugging Face Hub models.
const HubScheme = "hf"

// DefaultHubEndpoint is used when HF_ENDPOINT is not set.
const DefaultHubEndpoint = "https://huggingface.co"

// HubFiles are the non-weight files downloaded when the repository has them; config.json is required.
var HubFiles = []string{
	hf.ConfigFile, hf.GenerationConfigFile, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
	"chat_template.jinja", "chat_template.json", "added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model",
}

// IsHub reports whether uri is an hf:// model reference.
func IsHub(uri string) bool { return strings.HasPrefix(uri, HubScheme+"://") }

// HubRef is a parsed hf:// URI.
type HubRef struct {
	// Repo is "org/name" (or a legacy single "name").
	Repo string
	// Revision is a branch, tag or commit; "main" when the URI gives none.
	Revision string
}

var hubNamePart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ParseHub parses hf://org/name[@revision]. The revision may hold slashes (refs/pr/1).
func ParseHub(uri string) (HubRef, error) {
	if !IsHub(uri) {
		return HubRef{}, fmt.Errorf("%q is not an hf:// URI", uri)
	}
	rest := strings.TrimPrefix(uri, HubScheme+"://")
	ref := HubRef{Repo: rest, Revision: "main"}
	if i := strings.Index(rest, "@"); i >= 0 {
		ref.Repo, ref.Revision = rest[:i], rest[i+1:]
		if ref.Revision == "" {
			return HubRef{}, fmt.Errorf("%q: empty revision after @", uri)
		}
	}
	parts := strings.Split(ref.Repo, "/")
	if len(parts) > 2 {
		return HubRef{}, fmt.Errorf("%q: the repository must be org/name (a file inside a repository cannot be named)", uri)
	}
	for _, p := range parts {
		if !hubNamePart.MatchString(p) || strings.Contains(p, "..") {
			return HubRef{}, fmt.Errorf("%q: %q is not a valid repository name part", uri, p)
		}
	}
	return ref, nil
}

// HubClient downloads models from a Hub-compatible endpoint.
type HubClient struct {
	// Endpoint is the Hub's base URL without a trailing slash.
	Endpoint string
	// Token is sent as a bearer token when not empty.
	Token string
	// HTTP is the client; nil means http.DefaultClient.
	HTTP *http.Client
	// SkipWeights makes Download fetch config.json and the HubFiles only (for reading a model's tokenizer and
	// chat template, as inspect-dataset does); the weights are listed in Skipped and Digest stays empty.
	SkipWeights bool
}

// HubFromEnv is a client for $HF_ENDPOINT (default DefaultHubEndpoint) with $HF_TOKEN.
func HubFromEnv() HubClient {
	ep := strings.TrimRight(os.Getenv("HF_ENDPOINT"), "/")
	if ep == "" {
		ep = DefaultHubEndpoint
	}
	return HubClient{Endpoint: ep, Token: os.Getenv("HF_TOKEN")}
}

// HubModel is what Download fetched, for the run's status: the resolved commit makes the run reproducible.
type HubModel struct {
	Repo     string
	Revision string
	// Commit is the 40-hex commit sha the revision resolved to; every file was downloaded at it.
	Commit string
	// Files downloaded, in name order; Skipped are the repository's other files, in name order.
	Files   []string
	Skipped []string
	// Bytes downloaded in all.
	Bytes int64
	// Digest is hf.WeightsDigest of the downloaded directory: "sha256:<hex>" over the safetensors weight files'
	// bytes concatenated in name order (model.safetensors alone: its sha256).
	Digest string
}

type hubSibling struct {
	RFilename string `json:"rfilename"`
	Size      *int64 `json:"size"`
	LFS       *struct {
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	} `json:"lfs"`
}

var commitSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Download fetches the model uri (hf://org/name[@revision]) into the local directory dst (created), resolving
// the revision to a commit first. Errors name the repository and revision; a missing repository, revision or
// file (config.json included: a repository without one is not a model) wraps os.ErrNotExist (IsNotExist); a refused token or a gated repository says to set HF_TOKEN.
func (c HubClient) Download(ctx context.Context, uri, dst string) (*HubModel, error) {
	d, err := c.open(ctx, uri, dst)
	if err != nil {
		return nil, err
	}
	ref, m, siblings := d.ref, d.m, d.siblings
	if _, ok := siblings[hf.ConfigFile]; !ok {
		what := "it is not a transformers model"
		if _, ok := siblings[HubAdapterConfigFile]; ok {
			what = "it has " + HubAdapterConfigFile + ": a PEFT adapter repository, not a model (give it as the adapter, its base as the model)"
		}
		return nil, fmt.Errorf("hf://%s@%s: the repository has no %s; %s: %w", ref.Repo, ref.Revision, hf.ConfigFile, what, os.ErrNotExist)
	}
	if err := d.fetchPresent(ctx, HubFiles); err != nil {
		return nil, err
	}
	switch {
	case c.SkipWeights:
	case siblings[hf.WeightsIndexFile].RFilename != "":
		if err := d.fetch(ctx, hf.WeightsIndexFile); err != nil {
			return nil, err
		}
		shards, _, err := hf.WeightFiles(dst)
		if err != nil {
			return nil, fmt.Errorf("hf://%s@%s: %w", ref.Repo, m.Commit, err)
		}
		for _, name := range shards {
			if err := d.fetch(ctx, name); err != nil {
				return nil, err
			}
		}
	case siblings[hf.WeightsFile].RFilename != "":
		if err := d.fetch(ctx, hf.WeightsFile); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("hf://%s@%s: the repository has neither %s nor %s (weight files found: %v); only transformers' safetensors layout is read",
			ref.Repo, ref.Revision, hf.WeightsFile, hf.WeightsIndexFile, d.weightFiles())
	}
	d.finish()
	if c.SkipWeights {
		return m, nil
	}
	if m.Digest, err = hf.WeightsDigest(dst); err != nil {
		return nil, err
	}
	return m, nil
}

// PEFT adapter repositories (a PeftModel's save_pretrained or push_to_hub): the files DownloadAdapter requires.
const (
	HubAdapterConfigFile  = "adapter_config.json"
	HubAdapterWeightsFile = "adapter_model.safetensors"
)

// HubAdapterFiles are the files of a PEFT adapter repository downloaded besides HubAdapterConfigFile and
// HubAdapterWeightsFile when the repository has them: the tokenizer files and chat template that PEFT's
// save_pretrained (or a tokenizer's push_to_hub next to it) writes. config.json and the base model's weights are
// not an adapter's and are skipped.
var HubAdapterFiles = []string{
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
	"added_tokens.json", "vocab.json", "merges.txt", "tokenizer.model",
}

// DownloadAdapter fetches the PEFT adapter uri (hf://org/name[@revision]) into the local directory dst (created):
// adapter_config.json and adapter_model.safetensors, which it requires, and the HubAdapterFiles the repository
// has; everything else is skipped and listed. The revision resolves to a commit first, as in Download. Digest is
// "sha256:<hex>" of adapter_model.safetensors. A repository without adapter_config.json (a model, or an adapter in
// another layout) or with only adapter_model.bin wraps os.ErrNotExist, naming what it has; the other errors are
// Download's.
func (c HubClient) DownloadAdapter(ctx context.Context, uri, dst string) (*HubModel, error) {
	d, err := c.open(ctx, uri, dst)
	if err != nil {
		return nil, err
	}
	ref, m, siblings := d.ref, d.m, d.siblings
	where := fmt.Sprintf("hf://%s@%s", ref.Repo, ref.Revision)
	if _, ok := siblings[HubAdapterConfigFile]; !ok {
		what := "files found: " + strings.Join(d.names(), ", ")
		if _, ok := siblings[hf.ConfigFile]; ok {
			what = "it has " + hf.ConfigFile + ": a model repository, not an adapter"
		}
		return nil, fmt.Errorf("%s: the repository has no %s (%s); a PEFT LoRA adapter repository holds %s and %s: %w",
			where, HubAdapterConfigFile, what, HubAdapterConfigFile, HubAdapterWeightsFile, os.ErrNotExist)
	}
	if _, ok := siblings[HubAdapterWeightsFile]; !ok {
		return nil, fmt.Errorf("%s: the repository has no %s (weight files found: %v); only PEFT's safetensors layout is read: %w",
			where, HubAdapterWeightsFile, d.weightFiles(), os.ErrNotExist)
	}
	if err := d.fetchPresent(ctx, append([]string{HubAdapterConfigFile, HubAdapterWeightsFile}, HubAdapterFiles...)); err != nil {
		return nil, err
	}
	d.finish()
	raw, err := os.ReadFile(filepath.Join(dst, HubAdapterWeightsFile))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	m.Digest = "sha256:" + hex.EncodeToString(sum[:])
	return m, nil
}

// hubDownload is one download in progress: the revision resolved, the repository's listing, the files fetched.
type hubDownload struct {
	c        HubClient
	ref      HubRef
	dst      string
	m        *HubModel
	siblings map[string]hubSibling
	want     map[string]bool
}

// open resolves uri's revision to a commit and lists the repository's files, and creates dst.
func (c HubClient) open(ctx context.Context, uri, dst string) (*hubDownload, error) {
	ref, err := ParseHub(uri)
	if err != nil {
		return nil, err
	}
	info := fmt.Sprintf("%s/api/models/%s/revision/%s?blobs=true", c.Endpoint, ref.Repo, url.PathEscape(ref.Revision))
	var listing struct {
		SHA      string       `json:"sha"`
		Siblings []hubSibling `json:"siblings"`
	}
	if err := c.getJSON(ctx, ref, info, &listing); err != nil {
		return nil, err
	}
	if !commitSHA.MatchString(listing.SHA) {
		return nil, fmt.Errorf("hf://%s@%s: the Hub returned commit %q, not a 40-hex sha", ref.Repo, ref.Revision, listing.SHA)
	}
	d := &hubDownload{c: c, ref: ref, dst: dst, m: &HubModel{Repo: ref.Repo, Revision: ref.Revision, Commit: listing.SHA},
		siblings: map[string]hubSibling{}, want: map[string]bool{}}
	for _, s := range listing.Siblings {
		d.siblings[s.RFilename] = s
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, err
	}
	return d, nil
}

// fetch downloads the repository's file name at the resolved commit.
func (d *hubDownload) fetch(ctx context.Context, name string) error {
	s, ok := d.siblings[name]
	if !ok {
		return fmt.Errorf("hf://%s@%s: %s is not in the repository: %w", d.ref.Repo, d.m.Commit, name, os.ErrNotExist)
	}
	n, err := d.c.download(ctx, d.ref, d.m.Commit, s, filepath.Join(d.dst, name))
	d.m.Bytes += n
	d.want[name] = true
	return err
}

// fetchPresent downloads those of names the repository has.
func (d *hubDownload) fetchPresent(ctx context.Context, names []string) error {
	for _, name := range names {
		if _, ok := d.siblings[name]; ok {
			if err := d.fetch(ctx, name); err != nil {
				return err
			}
		}
	}
	return nil
}

// names are the repository's files, sorted.
func (d *hubDownload) names() []string {
	var out []string
	for name := range d.siblings {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// weightFiles are the repository's files that look like weights, sorted.
func (d *hubDownload) weightFiles() []string {
	var weights []string
	for _, name := range d.names() {
		if strings.HasSuffix(name, ".bin") || strings.HasSuffix(name, ".safetensors") || strings.HasSuffix(name, ".gguf") || strings.HasSuffix(name, ".pth") {
			weights = append(weights, name)
		}
	}
	return weights
}

// finish lists the files downloaded and those skipped.
func (d *hubDownload) finish() {
	for _, name := range d.names() {
		if d.want[name] {
			d.m.Files = append(d.m.Files, name)
		} else {
			d.m.Skipped = append(d.m.Skipped, name)
		}
	}
}

// hubError turns a Hub error response into a message; the Hub answers 401 (not 404) for a repository that does
// not exist or that the caller may not see, with X-Error-Code RepoNotFound.
func (c HubClient) hubError(ref HubRef, what string, resp *http.Response) error {
	code := resp.Header.Get("X-Error-Code")
	msg := resp.Header.Get("X-Error-Message")
	where := fmt.Sprintf("hf://%s@%s", ref.Repo, ref.Revision)
	tokenHint := "set HF_TOKEN (the run's secretRef) to a token with access"
	if c.Token != "" {
		tokenHint = "the token in HF_TOKEN was refused or has no access"
	}
	switch {
	case code == "RepoNotFound":
		return fmt.Errorf("%s: repository %s not found on %s (a private repository also reads so: %s): %w", where, ref.Repo, c.Endpoint, tokenHint, os.ErrNotExist)
	case code == "RevisionNotFound":
		return fmt.Errorf("%s: revision %q not found: %w", where, ref.Revision, os.ErrNotExist)
	case code == "EntryNotFound":
		return fmt.Errorf("%s: %s not found: %w", where, what, os.ErrNotExist)
	case code == "GatedRepo":
		return fmt.Errorf("%s: the repository is gated: accept its conditions on the Hub and %s", where, tokenHint)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: %s: %s; %s", where, what, resp.Status, tokenHint)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: %s: %s: %w", where, what, resp.Status, os.ErrNotExist)
	}
	if msg != "" {
		return fmt.Errorf("%s: %s: %s: %s", where, what, resp.Status, msg)
	}
	return fmt.Errorf("%s: %s: %s", where, what, resp.Status)
}

func (c HubClient) do(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", Redact(u), stripURL(err))
	}
	if c.Token != "" {
		// net/http drops Authorization on a redirect to another host (the Hub's CDN), as huggingface_hub does.
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, scrub(fmt.Errorf("fetching %s: %v", Redact(u), stripURL(err)))
	}
	return resp, nil
}

func (c HubClient) getJSON(ctx context.Context, ref HubRef, u string, dst any) error {
	resp, err := c.do(ctx, u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return scrub(c.hubError(ref, "model info", resp))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(dst); err != nil {
		return fmt.Errorf("hf://%s@%s: model info from %s: %v", ref.Repo, ref.Revision, c.Endpoint, err)
	}
	return nil
}

// download fetches one file at commit into dst (through a temporary file renamed into place), checking its size
// and, for an LFS file, its sha256 against the listing.
func (c HubClient) download(ctx context.Context, ref HubRef, commit string, s hubSibling, dst string) (int64, error) {
	u := fmt.Sprintf("%s/%s/resolve/%s/%s", c.Endpoint, ref.Repo, commit, (&url.URL{Path: s.RFilename}).EscapedPath())
	resp, err := c.do(ctx, u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, scrub(c.hubError(HubRef{Repo: ref.Repo, Revision: commit}, s.RFilename, resp))
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	where := fmt.Sprintf("hf://%s@%s: %s", ref.Repo, commit, s.RFilename)
	if err != nil {
		return n, scrub(fmt.Errorf("%s: %v", where, err))
	}
	if s.Size != nil && *s.Size != n {
		return n, fmt.Errorf("%s: %d bytes received, the listing says %d", where, n, *s.Size)
	}
	if s.LFS != nil {
		if s.LFS.Size != n {
			return n, fmt.Errorf("%s: %d bytes received, the LFS pointer says %d", where, n, s.LFS.Size)
		}
		if got := hex.EncodeToString(h.Sum(nil)); s.LFS.SHA256 != "" && got != s.LFS.SHA256 {
			return n, fmt.Errorf("%s: sha256 %s, the LFS pointer says %s", where, got, s.LFS.SHA256)
		}
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return n, err
	}
	return n, nil
}
