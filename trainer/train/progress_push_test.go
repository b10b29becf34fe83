package train

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/preftune/preftune/trainer/contract"
)

// A run whose pod was given a progress endpoint pushes its steps, evaluation and checkpoints there, and its last
// report (posted as the run ends) has the final step.
func TestRunPushesProgressToTheEndpoint(t *testing.T) {
	var mu sync.Mutex
	var reports []contract.ProgressReport
	var auth []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rep contract.ProgressReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			t.Errorf("report: %v", err)
		}
		mu.Lock()
		reports, auth = append(reports, rep), append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca, token := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	os.WriteFile(token, []byte("pod-bound-token"), 0o600)
	t.Setenv(contract.ProgressURLEnv, srv.URL+"/v1alpha1/progress/ns/sftruns/tiny")
	t.Setenv(contract.ProgressTokenFileEnv, token)
	t.Setenv(contract.ProgressCAFileEnv, ca)

	data := writeDemo(t, dir, 64, 3)
	res := mustRun(t, tinySFT(data, filepath.Join(dir, "out"), 6))

	mu.Lock()
	defer mu.Unlock()
	if len(reports) < 1 {
		t.Fatal("no report reached the endpoint")
	}
	last := reports[len(reports)-1]
	if last.Step != res.Step || last.TotalSteps != 6 || last.TrainMetrics["loss"] == 0 || last.EvalMetrics["eval_loss"] == 0 ||
		last.TokensPerSecond <= 0 || len(last.Checkpoints) == 0 || last.Checkpoints[len(last.Checkpoints)-1].Step != 6 {
		t.Errorf("last report = %+v", last)
	}
	if auth[0] != "Bearer pod-bound-token" {
		t.Errorf("Authorization = %q", auth[0])
	}
}
