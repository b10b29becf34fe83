package controllers

import (
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

// DefaultProgressInterval is how often at most a run's status is rewritten from its reports.
const DefaultProgressInterval = 10 * time.Second

// receivedReport is the newest accepted report of a run.
type receivedReport struct {
	contract.ProgressReport
	received metav1.Time
	podUID   string
}

// progressStore keeps the newest report of each run in memory (latest wins) and wakes the run's reconciler at
// most once per interval, so that any number of reports costs each run at most one status write per interval.
// A report that arrives inside the interval is not lost: a wake-up is scheduled for the interval's end.
type progressStore struct {
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	runs   map[runKey]*progressEntry
	events map[string]chan event.GenericEvent
}

type progressEntry struct {
	// report is the newest; released is the one the reconciler merges, the newest at the last wake-up. A
	// reconcile for another cause (such as the run's own status write) thus finds nothing new to write.
	report, released *receivedReport
	lastWake         time.Time
	scheduled        bool
}

func newProgressStore(interval time.Duration) *progressStore {
	if interval <= 0 {
		interval = DefaultProgressInterval
	}
	return &progressStore{interval: interval, now: time.Now, runs: map[runKey]*progressEntry{},
		events: map[string]chan event.GenericEvent{}}
}

// channel is the event source of one kind's reconciler; it is buffered so that waking never waits long.
func (s *progressStore) channel(kind string) chan event.GenericEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.events[kind]
	if !ok {
		ch = make(chan event.GenericEvent, 1024)
		s.events[kind] = ch
	}
	return ch
}

// put records a report and wakes the run now, or schedules a wake-up at the end of the current interval.
func (s *progressStore) put(k runKey, r *receivedReport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.runs[k]
	if !ok {
		e = &progressEntry{}
		s.runs[k] = e
	}
	e.report = r
	if e.scheduled {
		return
	}
	now := s.now()
	if wait := e.lastWake.Add(s.interval).Sub(now); wait > 0 {
		e.scheduled = true
		time.AfterFunc(wait, func() { s.wakeScheduled(k) })
		return
	}
	e.lastWake = now
	s.wakeLocked(k)
}

func (s *progressStore) wakeScheduled(k runKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.runs[k]
	if !ok || !e.scheduled {
		return
	}
	e.scheduled = false
	e.lastWake = s.now()
	s.wakeLocked(k)
}

func (s *progressStore) wakeLocked(k runKey) {
	if e := s.runs[k]; e != nil {
		e.released = e.report
	}
	ch, ok := s.events[k.kind]
	if !ok {
		return
	}
	var obj client.Object
	if k.kind == "DPORun" {
		obj = &v1alpha1.DPORun{}
	} else {
		obj = &v1alpha1.SFTRun{}
	}
	obj.SetNamespace(k.Namespace)
	obj.SetName(k.Name)
	select {
	case ch <- event.GenericEvent{Object: obj}:
	default:
		// The queue is far behind (over a thousand runs woke in one moment): try again after an interval
		// rather than block the HTTP handler.
		if e := s.runs[k]; e != nil && !e.scheduled {
			e.scheduled = true
			time.AfterFunc(s.interval, func() { s.wakeScheduled(k) })
		}
	}
}

// latest returns the report released to the reconciler at the run's last wake-up, nil when none.
func (s *progressStore) latest(k runKey) *receivedReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.runs[k]; ok {
		return e.released
	}
	return nil
}

// forget drops a finished or deleted run; later reports for it are refused before they reach the store.
func (s *progressStore) forget(k runKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.runs, k)
}
