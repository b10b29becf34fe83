package train

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

// Progress reports a run as it goes: a bar on a terminal, JSON lines otherwise (logs a machine reads).
type Progress interface {
	// Step reports a finished optimiser step, or an evaluation (metrics with eval_ names).
	Step(step, total int, m Metrics)
	// Event reports a one-off happening: "resumed", "checkpoint", "interrupted", "done", ...
	Event(name string, fields map[string]any)
}

// NewProgress picks a bar when w is a terminal and JSON lines otherwise.
func NewProgress(w io.Writer) Progress {
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		return &barProgress{w: w, start: time.Now()}
	}
	return &jsonProgress{w: w}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// NoProgress discards reports (tests).
type NoProgress struct{}

func (NoProgress) Step(int, int, Metrics)       {}
func (NoProgress) Event(string, map[string]any) {}

type jsonProgress struct{ w io.Writer }

func (p *jsonProgress) Step(step, total int, m Metrics) {
	event := "step"
	if _, eval := m["eval_loss"]; eval {
		event = "eval"
	}
	obj := map[string]any{"event": event, "total_steps": total, "time": time.Now().UTC().Format(time.RFC3339)}
	for k, v := range m {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			obj[k] = v
		}
	}
	obj["step"] = step
	p.write(obj)
}

func (p *jsonProgress) Event(name string, fields map[string]any) {
	obj := map[string]any{"event": name, "time": time.Now().UTC().Format(time.RFC3339)}
	for k, v := range fields {
		obj[k] = v
	}
	p.write(obj)
}

func (p *jsonProgress) write(obj map[string]any) {
	if line, err := json.Marshal(obj); err == nil {
		p.w.Write(append(line, '\n'))
	}
}

type barProgress struct {
	w     io.Writer
	start time.Time
	first int // the step this attempt started from, for the rate
}

func (p *barProgress) Step(step, total int, m Metrics) {
	if _, eval := m["eval_loss"]; eval {
		fmt.Fprintf(p.w, "\r\033[K%s\n", formatMetrics(step, m))
		return
	}
	if p.first == 0 {
		p.first = step
		p.start = time.Now()
	}
	const width = 30
	frac := float64(step) / float64(max(total, 1))
	filled := int(frac * width)
	eta := ""
	if done := step - p.first; done > 0 {
		left := time.Duration(float64(time.Since(p.start)) / float64(done) * float64(total-step))
		eta = " eta " + left.Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r\033[K[%s%s] %d/%d loss %.4f%s", strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		step, total, m["loss"], eta)
}

func (p *barProgress) Event(name string, fields map[string]any) {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, fields[k])
	}
	fmt.Fprintf(p.w, "\r\033[K%s%s\n", name, b.String())
}

func formatMetrics(step int, m Metrics) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "step %d", step)
	for _, k := range keys {
		if k != "step" {
			fmt.Fprintf(&b, " %s=%.4g", k, m[k])
		}
	}
	return b.String()
}
