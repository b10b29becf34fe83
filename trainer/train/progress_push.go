package train

import (
	"fmt"
	"os"

	"github.com/preftune/preftune/trainer/report"
)

// withReporter adds the operator's progress endpoint to p when the pod was given one, and returns the function
// that posts the last report and stops. Reporting never fails a run: a reporter that cannot start is logged and
// skipped, since the result still travels in the termination message.
func withReporter(p Progress) (Progress, func()) {
	rep, err := report.FromEnv(os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "preftune-trainer: progress reports disabled: %v\n", err)
		return p, func() {}
	}
	if rep == nil {
		return p, func() {}
	}
	return teeProgress{Progress: p, rep: rep}, rep.Close
}

// teeProgress reports to the log (or terminal) and to the endpoint.
type teeProgress struct {
	Progress
	rep *report.Reporter
}

func (t teeProgress) Step(step, total int, m Metrics) {
	t.Progress.Step(step, total, m)
	t.rep.Step(step, total, m)
}

func (t teeProgress) Event(name string, fields map[string]any) {
	t.Progress.Event(name, fields)
	t.rep.Event(name, fields)
}
