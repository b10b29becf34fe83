package plot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// ReadMetrics reads metrics.jsonl. Null values (non-finite metrics) are left out of their line; a torn last line
// (a process that died while writing it) is ignored, any other bad line is an error naming it.
func ReadMetrics(path string) ([]map[string]float64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []map[string]float64
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var all map[string]*float64
		if err := json.Unmarshal(line, &all); err != nil {
			if !bytes.HasSuffix(raw, []byte("\n")) && isLast(raw, n) {
				break
			}
			return nil, fmt.Errorf("%s: line %d: %v", path, n, err)
		}
		m := make(map[string]float64, len(all))
		for k, v := range all {
			if v != nil {
				m[k] = *v
			}
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return out, nil
}

func isLast(raw []byte, n int) bool { return bytes.Count(raw, []byte("\n")) == n-1 }
