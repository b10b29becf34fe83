package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// metricsFile is the metrics log's name under the output.
const metricsFile = "metrics.jsonl"

// Metrics are one logged step by TRL's names (loss, rewards/chosen, eval_loss, learning_rate, step, epoch, ...).
type Metrics map[string]float64

// metricsLog appends Metrics as JSON lines to <output>/metrics.jsonl. After a resume, lastTrain and lastEval are the
// newest lines an earlier attempt logged up to the checkpoint (a run resumed at its end still reports them).
type metricsLog struct {
	f                   *os.File
	lastTrain, lastEval Metrics
}

// openMetrics opens path for appending. Lines logged after resumeStep come from the attempt that died after its
// last checkpoint; they are dropped, since this attempt logs those steps again.
func openMetrics(path string, resumeStep int) (*metricsLog, error) {
	l := &metricsLog{}
	if err := l.truncate(path, resumeStep); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	l.f = f
	return l, nil
}

func (l *metricsLog) truncate(path string, resumeStep int) error {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var all map[string]*float64
		// A torn last line (the process died while writing it) does not parse: drop it too.
		if json.Unmarshal(line, &all) != nil || all["step"] == nil || *all["step"] > float64(resumeStep) {
			continue
		}
		keep.Write(line)
		keep.WriteByte('\n')
		m := Metrics{}
		for k, v := range all {
			if v != nil {
				m[k] = *v
			}
		}
		if _, eval := all["eval_loss"]; eval {
			l.lastEval = m
		} else {
			l.lastTrain = m
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if keep.Len() == len(data) {
		return nil
	}
	return writeFileAtomic(path, keep.Bytes())
}

// Log writes one line. NaN and infinities are not JSON: they are written as null and the key is kept.
func (l *metricsLog) Log(m Metrics) error {
	obj := make(map[string]any, len(m))
	for k, v := range m {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			obj[k] = nil
		} else {
			obj[k] = v
		}
	}
	line, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	_, err = l.f.Write(append(line, '\n'))
	return err
}

func (l *metricsLog) Close() error { return l.f.Close() }
