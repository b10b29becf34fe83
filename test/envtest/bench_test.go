package envtest

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/controllers"
)

// BenchmarkOperator1000SFTRuns creates 1,000 SFTRuns against a Ready dataset and measures how fast the manager
// turns them into Jobs, how many API writes it spends per run, and the test process's memory. It runs the work
// once whatever b.N is (run it with -benchtime 1x); PREFTUNE_BENCH_RUNS overrides the number of runs.
//
//	KUBEBUILDER_ASSETS=$PWD/bin/envtest go test ./test/envtest/ -run '^$' -bench Operator1000SFTRuns -benchtime 1x
func BenchmarkOperator1000SFTRuns(b *testing.B) {
	runs := 1000
	if v := os.Getenv("PREFTUNE_BENCH_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("PREFTUNE_BENCH_RUNS=%q is not a positive integer", v)
		}
		runs = n
	}
	for _, c := range []controllers.Concurrency{{Runs: 4, Datasets: 2}, {Runs: 16, Datasets: 2}} {
		b.Run(fmt.Sprintf("runs=%d", c.Runs), func(b *testing.B) { benchSFTRuns(b, runs, c) })
	}
}

func benchSFTRuns(b *testing.B, runs int, conc controllers.Concurrency) {
	ctx := context.Background()
	// The creating client gets a generous client-side limit of its own, so creation is not what is measured.
	creatorCfg := rest.CopyConfig(cfg)
	creatorCfg.QPS, creatorCfg.Burst = 2000, 4000
	creator, err := client.NewWithWatch(creatorCfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}

	baseline := settledHeap()
	counter := newRequestCounter()
	mem := startMemSampler(50 * time.Millisecond)
	stop := sync.OnceFunc(startCountedManager(b, counter, conc))
	defer stop()

	ns := newNamespace(b)
	readyDataset(b, ns, "bench")
	// Only the runs' requests count; the dataset's validation came before.
	counter.reset()

	// Watches time each Job's appearance and each run's status.jobName without polling 1,000-object lists.
	jobsSeen, runsSeen := make(map[string]time.Time, runs), make(map[string]time.Time, runs)
	jobWatch, err := creator.Watch(ctx, &batchv1.JobList{}, client.InNamespace(ns),
		client.MatchingLabels{controllers.LabelOwnerKind: "SFTRun"})
	if err != nil {
		b.Fatal(err)
	}
	defer jobWatch.Stop()
	runWatch, err := creator.Watch(ctx, &v1alpha1.SFTRunList{}, client.InNamespace(ns))
	if err != nil {
		b.Fatal(err)
	}
	defer runWatch.Stop()

	cpu0 := cpuTimes()
	start := time.Now()
	created := make([]time.Time, runs)
	createErr := make(chan error, 1)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < runs; i = int(next.Add(1)) - 1 {
				created[i] = time.Now()
				if err := creator.Create(ctx, newSFTRun(ns, benchRunName(i), "bench")); err != nil {
					select {
					case createErr <- fmt.Errorf("create run %d: %w", i, err):
					default:
					}
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(createErr) }()

	deadline := time.After(10 * time.Minute)
	var createdAll time.Duration
	for len(jobsSeen) < runs || len(runsSeen) < runs {
		select {
		case err, ok := <-createErr:
			if ok {
				b.Fatal(err)
			}
			createdAll, createErr = time.Since(start), nil
		case ev, ok := <-jobWatch.ResultChan():
			if !ok {
				b.Fatalf("the Job watch closed after %d Jobs", len(jobsSeen))
			}
			if job, isJob := ev.Object.(*batchv1.Job); isJob && ev.Type == watch.Added {
				if _, dup := jobsSeen[job.Labels[controllers.LabelOwnerName]]; !dup {
					jobsSeen[job.Labels[controllers.LabelOwnerName]] = time.Now()
				}
			}
		case ev, ok := <-runWatch.ResultChan():
			if !ok {
				b.Fatalf("the SFTRun watch closed after %d runs showed their Job", len(runsSeen))
			}
			if run, isRun := ev.Object.(*v1alpha1.SFTRun); isRun && run.Status.JobName != "" {
				if _, dup := runsSeen[run.Name]; !dup {
					runsSeen[run.Name] = time.Now()
				}
			}
		case <-deadline:
			b.Fatalf("after 10 minutes: %d of %d Jobs, %d runs show their Job", len(jobsSeen), runs, len(runsSeen))
		}
	}
	allJobs := latest(jobsSeen).Sub(start)
	allStatus := latest(runsSeen).Sub(start)
	// Writes that trail the last status (events, requeues) belong to the runs too: wait until the manager is quiet.
	quiet := counter.waitQuiet(2*time.Second, time.Minute)
	cpu := cpuTimes().sub(cpu0)
	peak := mem.stop()
	after := settledHeap()

	jobLat, statusLat := make([]time.Duration, 0, runs), make([]time.Duration, 0, runs)
	for i := range runs {
		name := benchRunName(i)
		jobLat = append(jobLat, jobsSeen[name].Sub(created[i]))
		statusLat = append(statusLat, runsSeen[name].Sub(created[i]))
	}
	writes, byKey, failed := counter.snapshot()
	perRun := float64(writes) / float64(runs)

	// The figures come from the test process, which holds the test's clients and watches besides the manager: the
	// delta over the baseline taken before the manager started is the closer estimate of the manager's own cost.
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%d SFTRuns, manager concurrency runs=%d datasets=%d, GOMAXPROCS=%d\n", runs, conc.Runs, conc.Datasets, runtime.GOMAXPROCS(0))
	fmt.Fprintf(&sb, "  creating all runs:           %6.2f s (%.0f creates/s, 8 goroutines)\n", createdAll.Seconds(), float64(runs)/createdAll.Seconds())
	fmt.Fprintf(&sb, "  first create -> all Jobs:     %6.2f s (%.0f Jobs/s)\n", allJobs.Seconds(), float64(runs)/allJobs.Seconds())
	fmt.Fprintf(&sb, "  first create -> all statuses: %6.2f s (status.jobName set)\n", allStatus.Seconds())
	fmt.Fprintf(&sb, "  run created -> its Job:       p50 %v  p99 %v  max %v\n", pct(jobLat, 50), pct(jobLat, 99), pct(jobLat, 100))
	fmt.Fprintf(&sb, "  run created -> its status:    p50 %v  p99 %v  max %v\n", pct(statusLat, 50), pct(statusLat, 99), pct(statusLat, 100))
	fmt.Fprintf(&sb, "  manager API writes:           %d = %.2f per run (quiet after %v)\n", writes, perRun, quiet.Round(time.Millisecond))
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		fmt.Fprintf(&sb, "    %-48s %6d (%.2f/run)", k, byKey[k], float64(byKey[k])/float64(runs))
		if failed[k] > 0 {
			fmt.Fprintf(&sb, "  %d failed", failed[k])
		}
		sb.WriteString("\n")
	}
	fmt.Fprintf(&sb, "  test process heap in use:     baseline %.1f MB, peak %.1f MB (+%.1f), settled after %.1f MB (+%.1f)\n",
		mb(baseline.HeapInuse), mb(peak.HeapInuse), mb(peak.HeapInuse)-mb(baseline.HeapInuse), mb(after.HeapInuse), mb(after.HeapInuse)-mb(baseline.HeapInuse))
	fmt.Fprintf(&sb, "  test process memory from OS:  baseline %.1f MB, peak %.1f MB (+%.1f)\n", mb(baseline.Sys), mb(peak.Sys), mb(peak.Sys)-mb(baseline.Sys))
	fmt.Fprintf(&sb, "  CPU seconds (2 cores = %.0f s available): test process %.1f, kube-apiserver %.1f, etcd %.1f\n",
		2*allStatus.Seconds(), cpu.self, cpu.children["kube-apiserver"], cpu.children["etcd"])
	// Printed, not logged: a benchmark's log is cut short unless -v.
	fmt.Print(sb.String())

	b.ReportMetric(allJobs.Seconds(), "seconds_to_all_jobs")
	b.ReportMetric(allStatus.Seconds(), "seconds_to_all_status")
	b.ReportMetric(perRun, "writes_per_run")
	b.ReportMetric(mb(peak.HeapInuse), "peak_heap_MB")
	b.ReportMetric(mb(peak.HeapInuse)-mb(baseline.HeapInuse), "peak_heap_delta_MB")
	b.ReportMetric(mb(peak.Sys), "peak_sys_MB")

	stop()
	cleanupBenchNamespace(b, ns)
}

func benchRunName(i int) string { return fmt.Sprintf("run-%04d", i) }

// startCountedManager is startManager with the manager's requests counted and client-side rate limiting off, as
// ctrl.GetConfigOrDie leaves it for cmd/manager on servers with priority and fairness.
func startCountedManager(b *testing.B, counter *requestCounter, conc controllers.Concurrency) (stop func()) {
	b.Helper()
	mcfg := rest.CopyConfig(cfg)
	mcfg.QPS, mcfg.Burst = -1, 0
	mcfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &countingTransport{next: rt, c: counter} })
	return startManagerWith(b, mcfg, testOptions, conc)
}

// cleanupBenchNamespace deletes what the benchmark made: envtest runs no namespace or garbage collector, and the
// next manager would otherwise cache and reconcile these runs too.
func cleanupBenchNamespace(b *testing.B, ns string) {
	ctx := context.Background()
	for _, obj := range []client.Object{&v1alpha1.SFTRun{}, &batchv1.Job{}, &corev1.ConfigMap{}, &v1alpha1.PreferenceDataset{}, &corev1.Pod{}} {
		if err := k8s.DeleteAllOf(ctx, obj, client.InNamespace(ns)); err != nil {
			b.Errorf("delete %T in %s: %v", obj, ns, err)
		}
	}
}

// requestCounter counts a client's API requests by verb and resource.
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
	failed map[string]int
	last   time.Time // of the latest write
}

func newRequestCounter() *requestCounter {
	return &requestCounter{counts: map[string]int{}, failed: map[string]int{}}
}

func (c *requestCounter) add(key string, write, failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[key]++
	if failed {
		c.failed[key]++
	}
	if write {
		c.last = time.Now()
	}
}

func (c *requestCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts, c.failed, c.last = map[string]int{}, map[string]int{}, time.Now()
}

// snapshot returns the writes (create, update, patch, delete) in total and by key, and the failed ones by key.
func (c *requestCounter) snapshot() (writes int, byKey, failed map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byKey, failed = map[string]int{}, map[string]int{}
	for k, n := range c.counts {
		if isWriteKey(k) {
			writes += n
			byKey[k] = n
			failed[k] = c.failed[k]
		}
	}
	return writes, byKey, failed
}

// waitQuiet waits until no write has been made for idle (at most max), and says how long it waited.
func (c *requestCounter) waitQuiet(idle, max time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < max {
		c.mu.Lock()
		since := time.Since(c.last)
		c.mu.Unlock()
		if since >= idle {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

func isWriteKey(k string) bool {
	verb, _, _ := strings.Cut(k, " ")
	return verb != "get" && verb != "list" && verb != "watch"
}

// countingTransport counts every request that passes through it; an answer of 400 or more counts as failed.
type countingTransport struct {
	next http.RoundTripper
	c    *requestCounter
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	verb, resource := requestVerbResource(req)
	resp, err := t.next.RoundTrip(req)
	key := verb + " " + resource
	t.c.add(key, isWriteKey(key), err != nil || resp.StatusCode >= 400)
	return resp, err
}

// requestVerbResource names a request the way the API server's audit log does: a verb (create, update, patch,
// delete, get, list, watch) and group/resource[/subresource], the group left out for the core API.
func requestVerbResource(req *http.Request) (verb, resource string) {
	p := strings.Trim(req.URL.Path, "/")
	var group string
	switch {
	case strings.HasPrefix(p, "api/"):
		p = strings.TrimPrefix(p, "api/")
		_, p, _ = strings.Cut(p, "/") // the version
	case strings.HasPrefix(p, "apis/"):
		parts := strings.SplitN(strings.TrimPrefix(p, "apis/"), "/", 3)
		group = parts[0]
		p = ""
		if len(parts) == 3 {
			p = parts[2]
		}
	}
	seg := strings.Split(p, "/")
	if len(seg) >= 3 && seg[0] == "namespaces" {
		seg = seg[2:]
	}
	resource = seg[0]
	named := len(seg) >= 2
	if len(seg) >= 3 {
		resource += "/" + seg[2]
	}
	if group != "" {
		resource = group + "/" + resource
	}
	switch req.Method {
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
	default:
		switch {
		case req.URL.Query().Get("watch") == "true":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	}
	return verb, resource
}

// memSampler records the peak of the process's heap in use and of the memory it holds from the OS.
type memSampler struct {
	done chan struct{}
	peak chan runtime.MemStats
}

func startMemSampler(every time.Duration) *memSampler {
	s := &memSampler{done: make(chan struct{}), peak: make(chan runtime.MemStats, 1)}
	go func() {
		var peak, m runtime.MemStats
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&m)
			peak.HeapInuse, peak.Sys = max(peak.HeapInuse, m.HeapInuse), max(peak.Sys, m.Sys)
			select {
			case <-s.done:
				s.peak <- peak
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *memSampler) stop() runtime.MemStats {
	close(s.done)
	return <-s.peak
}

// settledHeap reads the memory statistics after a collection, so that garbage does not count.
func settledHeap() runtime.MemStats {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// cpuUse is the CPU time of this process and of its children by command name (envtest's kube-apiserver and etcd).
type cpuUse struct {
	self     float64
	children map[string]float64
}

func (a cpuUse) sub(b cpuUse) cpuUse {
	d := cpuUse{self: a.self - b.self, children: map[string]float64{}}
	for k, v := range a.children {
		d.children[k] = v - b.children[k]
	}
	return d
}

// cpuTimes reads /proc (Linux); elsewhere the children's times stay zero.
func cpuTimes() cpuUse {
	u := cpuUse{self: procCPU("self"), children: map[string]float64{}}
	pid := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		name, fields, ok := parseProcStat(string(raw))
		if ok && fields[1] == pid {
			u.children[name] += statCPU(fields)
		}
	}
	return u
}

func procCPU(pid string) float64 {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	_, fields, ok := parseProcStat(string(raw))
	if !ok {
		return 0
	}
	return statCPU(fields)
}

// parseProcStat splits /proc/PID/stat: the command name is in parentheses and may hold spaces; fields[0] is the
// state, fields[1] the parent's pid, fields[11] and fields[12] user and system time in clock ticks.
func parseProcStat(s string) (name string, fields []string, ok bool) {
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return "", nil, false
	}
	fields = strings.Fields(s[closing+1:])
	return s[open+1 : closing], fields, len(fields) > 12
}

// statCPU converts the user and system ticks; Linux reports them at 100 per second on every common platform.
func statCPU(fields []string) float64 {
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100
}

func latest(m map[string]time.Time) time.Time {
	var t time.Time
	for _, v := range m {
		if v.After(t) {
			t = v
		}
	}
	return t
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))].Round(time.Millisecond)
}

func mb(bytes uint64) float64 { return float64(bytes) / (1 << 20) }
