package train

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
	"github.com/preftune/preftune/trainer/hf"
	"github.com/preftune/preftune/trainer/model"
	"github.com/preftune/preftune/trainer/storage"
	"github.com/preftune/preftune/trainer/storage/hubtest"
	"github.com/preftune/preftune/trainer/storage/s3test"
)

// copyFiles copies the files of directory src into dst (created) and returns dst.
func copyFiles(t *testing.T, src, dst string) string {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if de.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, de.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// eventOf is the last event of kind the recorder got (nil when none).
func eventOf(rec *recorder, kind string) map[string]any {
	var last map[string]any
	for _, e := range rec.events {
		if e["event"] == kind {
			last = e
		}
	}
	return last
}

// TestDPOReferenceAdapterFromHub: a DPO run's reference.adapterURI may be a PEFT adapter repository on the Hub
// (hf://org/name@revision, served on loopback at $HF_ENDPOINT with $HF_TOKEN). The adapter is an SFT run's
// trained one; the run on it computes the same reference log-probs (the "reference" event's digest), the same
// losses and the same merged model as the run on the same adapter's local directory, and not those of the base
// alone. Only the adapter's files come down (not the repository's model card); the result and an
// "adapter-downloaded" event record the commit the revision resolved to and the adapter weights' digest. A missing
// repository or revision, a model repository (no adapter_config.json) and an adapter whose peft_type is not LORA
// are invalid input naming reference.adapterURI, before training.
func TestDPOReferenceAdapterFromHub(t *testing.T) {
	dir := t.TempDir()
	dataPath := writeDemo(t, dir, 200, 21)
	base := mustRun(t, tinySFT(dataPath, filepath.Join(dir, "base"), 4))
	sft := withAdapter(tinySFT(dataPath, filepath.Join(dir, "sft"), 3), contract.AdapterConfig{Rank: 4, TargetModules: []string{"c_attn", "c_fc"}})
	sft.Model = contract.ModelConfig{From: base.ModelURI}
	sft.Training.LearningRate = 1e-2
	sft.Output.MergedModel = ptrTo(false)
	adapter := localPathOf(t, mustRun(t, sft).AdapterURI)

	repo := copyFiles(t, adapter, filepath.Join(dir, "repo"))
	if err := os.WriteFile(filepath.Join(repo, "README.md"), []byte("---\nlibrary_name: peft\n---\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ia3 := copyFiles(t, adapter, filepath.Join(dir, "ia3"))
	var ac map[string]any
	raw, _ := os.ReadFile(filepath.Join(ia3, model.AdapterConfigFile))
	if err := json.Unmarshal(raw, &ac); err != nil {
		t.Fatal(err)
	}
	ac["peft_type"] = "IA3"
	raw, _ = json.Marshal(ac)
	if err := os.WriteFile(filepath.Join(ia3, model.AdapterConfigFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	hub := &hubtest.Hub{Repos: map[string]string{"org/adapter": repo, "org/ia3": ia3, "org/model": localPathOf(t, base.ModelURI)},
		Commit: strings.Repeat("c3", 20), Refs: map[string]bool{"main": true, "v1": true}, Token: "hf_adapter_token"}
	hubtest.Start(t, hub)

	dpoConfig := func(out, adapterURI string) contract.RunConfig {
		rc := withAdapter(tinyDPO(dataPath, base.ModelURI, filepath.Join(dir, out), 2), contract.AdapterConfig{Rank: 2})
		rc.Reference.AdapterURI = adapterURI
		return rc
	}
	dpo := func(out, adapterURI string) (*contract.Result, *recorder) {
		cfg, err := NewConfig(dpoConfig(out, adapterURI))
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		res, err := Run(context.Background(), cfg, Options{Progress: rec})
		if err != nil {
			t.Fatalf("DPO with reference adapter %q: %v", adapterURI, err)
		}
		return res, rec
	}
	viaHub, hubEvents := dpo("via-hub", "hf://org/adapter@v1")
	viaDir, dirEvents := dpo("via-dir", adapter)
	_, baseEvents := dpo("base-only", "")

	refDigest := func(rec *recorder) any { return eventOf(rec, "reference")["digest"] }
	if refDigest(hubEvents) == nil || refDigest(hubEvents) != refDigest(dirEvents) {
		t.Errorf("reference log-probs digest %v from the Hub, %v from the directory: want equal", refDigest(hubEvents), refDigest(dirEvents))
	}
	if refDigest(hubEvents) == refDigest(baseEvents) {
		t.Error("the reference log-probs with the Hub adapter equal the base's: the adapter was not applied")
	}
	if viaHub.ModelDigest == "" || viaHub.ModelDigest != viaDir.ModelDigest {
		t.Errorf("merged model %s from the Hub adapter, %s from the directory: want equal", viaHub.ModelDigest, viaDir.ModelDigest)
	}
	lh, ld := trainLosses(t, filepath.Join(dir, "via-hub")), trainLosses(t, filepath.Join(dir, "via-dir"))
	if len(lh) != 2 || lh[0] != math.Ln2 || !slices.Equal(lh, ld) {
		t.Errorf("losses %v from the Hub adapter, %v from the directory: want equal, starting at ln 2", lh, ld)
	}

	weights, err := fileDigest(filepath.Join(adapter, model.AdapterWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	if viaHub.SourceAdapterURI != "hf://org/adapter@v1" || viaHub.SourceAdapterCommit != hub.Commit || viaHub.SourceAdapterDigest != weights {
		t.Errorf("result's source adapter %q commit %q digest %q, want hf://org/adapter@v1, %s, %s", viaHub.SourceAdapterURI,
			viaHub.SourceAdapterCommit, viaHub.SourceAdapterDigest, hub.Commit, weights)
	}
	if viaDir.SourceAdapterURI != adapter || viaDir.SourceAdapterCommit != "" || viaDir.SourceAdapterDigest != weights {
		t.Errorf("local adapter: source adapter %q commit %q digest %q", viaDir.SourceAdapterURI, viaDir.SourceAdapterCommit, viaDir.SourceAdapterDigest)
	}
	if viaHub.SourceURI != base.ModelURI || viaHub.SourceCommit != "" {
		t.Errorf("source model %q commit %q: the adapter's commit must not stand for the base's", viaHub.SourceURI, viaHub.SourceCommit)
	}
	dl := eventOf(hubEvents, "adapter-downloaded")
	if dl == nil || dl["commit"] != hub.Commit || dl["digest"] != weights || dl["uri"] != "hf://org/adapter@v1" {
		t.Errorf("adapter-downloaded event %v", dl)
	}
	if m := eventOf(hubEvents, "reference-adapter-merged"); m == nil || m["commit"] != hub.Commit || m["digest"] != weights {
		t.Errorf("reference-adapter-merged event %v", m)
	}
	fetched := hub.Fetched()
	for _, want := range []string{model.AdapterConfigFile, model.AdapterWeightsFile} {
		if !slices.Contains(fetched, "org/adapter/"+want) {
			t.Errorf("%s not downloaded: %v", want, fetched)
		}
	}
	for _, f := range fetched {
		name := strings.TrimPrefix(f, "org/adapter/")
		if name != model.AdapterConfigFile && name != model.AdapterWeightsFile && !slices.Contains(storage.HubAdapterFiles, name) {
			t.Errorf("downloaded %s, which an adapter does not need", f)
		}
	}
	if auth := hub.Auth(); len(auth) == 0 || auth[0] != "Bearer hf_adapter_token" {
		t.Errorf("the Hub got Authorization %q, want the HF_TOKEN bearer", auth)
	}

	for uri, wants := range map[string][]string{
		"hf://org/missing":    {"org/missing", "not found"},
		"hf://org/adapter@v9": {`revision "v9" not found`},
		"hf://org/model":      {"no adapter_config.json", "a model repository, not an adapter"},
		"hf://org/ia3":        {"hf://org/ia3 (commit " + hub.Commit + ")", `field peft_type is "IA3", want LORA`},
	} {
		out := "bad-" + strings.NewReplacer("hf://", "", "/", "-", "@", "-").Replace(uri)
		err := runErr(t, dpoConfig(out, uri), ReasonReferenceUnreadable, contract.ExitInvalidInput)
		msg := err.Error()
		if !strings.Contains(msg, "reference.adapterURI") || strings.Contains(msg, hub.Token) {
			t.Errorf("%s: %v, want an error naming reference.adapterURI (and never the token)", uri, err)
		}
		for _, w := range wants {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %v, want it to say %q", uri, err, w)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, out, metricsFile)); !os.IsNotExist(err) {
			t.Errorf("%s: the run trained before refusing (%v)", uri, err)
		}
	}
}

// TestReferenceAdapterFromHubMemoryCheck: the memory pre-check of a DPO run whose reference adapter is remote (on
// the Hub or in a store) encodes the rows with the adapter's chat template, as the run does: the adapter is
// downloaded (stage) before the pre-check, with its tokenizer_config.json. The adapter's template writes a long preamble,
// so its rows need a longer bucket than with the base's template (stories260K has none: the built-in one); the
// plan with hf:// or s3:// is the plan with the same adapter directory on disk, longer than the base's.
func TestReferenceAdapterFromHubMemoryCheck(t *testing.T) {
	src := "../../../shared/models/stories260K"
	if _, err := os.Stat(filepath.Join(src, "model.safetensors")); err != nil {
		t.Skipf("%s is absent (../shared is the project's read-only test data beside the repository): %v", src, err)
	}
	tmp := t.TempDir()
	p, _, _, err := LoadModelDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AddLoRA(model.LoRA{Rank: 2, Alpha: 4}, 1); err != nil {
		t.Fatal(err)
	}
	adapter := filepath.Join(tmp, "adapter")
	if _, err := p.SaveAdapter(adapter, src); err != nil {
		t.Fatal(err)
	}
	preamble := strings.Repeat("Once upon a time there was a little girl who liked to play in the park. ", 4)
	tmpl := "{{ '" + preamble + "' }}{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}" +
		"{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
	baseCfg, err := os.ReadFile(filepath.Join(src, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := withChatTemplate(baseCfg, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(adapter, "tokenizer_config.json"), tc, 0o644); err != nil {
		t.Fatal(err)
	}
	hubtest.Start(t, &hubtest.Hub{Repos: map[string]string{"org/story-adapter": adapter}, Commit: strings.Repeat("5e", 20),
		Refs: map[string]bool{"main": true}})

	rows := `{"prompt": [{"role": "user", "content": "Who was in the park?"}], "chosen": [{"role": "assistant", "content": "A little girl named Lily."}], "rejected": [{"role": "assistant", "content": "Nobody."}]}
{"prompt": [{"role": "user", "content": "What did she see?"}], "chosen": [{"role": "assistant", "content": "She saw a big, red ball."}], "rejected": [{"role": "assistant", "content": "A ball."}]}
`
	dataPath := filepath.Join(tmp, "prefs.jsonl")
	if err := os.WriteFile(dataPath, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	cg := filepath.Join(tmp, "cgroup")
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cg, "memory.max"), []byte("104857600\n"), 0o644); err != nil { // 100 MiB
		t.Fatal(err)
	}
	old := cgroupRoot
	cgroupRoot = cg
	defer func() { cgroupRoot = old }()

	plan := func(adapterURI string) hf.MemoryPlan {
		t.Helper()
		rc := tinyDPO(dataPath, src, filepath.Join(tmp, "out"), 1)
		rc.Dataset.EvalFraction = 0
		rc.Training.BatchSize = 2
		rc.Reference.AdapterURI = adapterURI
		cfg, err := NewConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Run(context.Background(), cfg, Options{})
		var me *hf.MemoryError
		if !errors.As(err, &me) || reasonOf(err, "") != ReasonInsufficientMemory {
			t.Fatalf("reference adapter %q under 100 MiB: %v, want an InsufficientMemory MemoryError", adapterURI, err)
		}
		return me.Plan
	}
	srv := s3test.Start(t, s3Bucket)
	if err := openS3(t, srv, "adapter").UploadDir(context.Background(), adapter, "", model.AdapterWeightsFile); err != nil {
		t.Fatal(err)
	}
	viaHub, viaS3, viaDir, baseOnly := plan("hf://org/story-adapter"), plan(srv.URI(s3Bucket, "adapter")), plan(adapter), plan("")
	t.Logf("memory plan context: %d tokens with the Hub adapter's template, %d with the s3:// one's, %d with its directory's, %d with the base's",
		viaHub.ContextLength, viaS3.ContextLength, viaDir.ContextLength, baseOnly.ContextLength)
	if viaHub.ContextLength != viaDir.ContextLength || viaS3.ContextLength != viaDir.ContextLength || viaDir.ContextLength <= baseOnly.ContextLength {
		t.Errorf("memory plan context %d with the Hub adapter, %d with the s3:// one, %d with its directory, %d with the base "+
			"alone: want the adapter's template's (equal, and longer than the base's)", viaHub.ContextLength, viaS3.ContextLength,
			viaDir.ContextLength, baseOnly.ContextLength)
	}
}
