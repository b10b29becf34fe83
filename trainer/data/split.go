package data

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
)

// How a split grouped the rows (SplitResult.By, DatasetReport.SplitBy).
const (
	// SplitByPrompt keeps every row of one prompt on the same side, so no eval prompt was trained on.
	SplitByPrompt = "prompt"
	// SplitByRow splits rows that share a prompt when grouping by prompt cannot reach the asked fraction (all
	// rows share a few prompts, or have none, as {"text"} rows); rows with the same prompt and chosen text still
	// stay together, so no row's exact text lands on both sides.
	SplitByRow = "row"
)

// SplitResult is a train/eval split.
type SplitResult struct {
	Train, Eval []Row
	// By is SplitByPrompt or SplitByRow ("" when nothing was held out because the fraction is 0).
	By string
	// Target is the number of eval rows asked for: evalFraction·rows, rounded, at most rows−1.
	Target int
	// Prompts counts the distinct prompts of the rows.
	Prompts int
}

// splitTolerance is how far from Target grouping by prompt may land before the split groups by row instead:
// a tenth of the target, at least one row.
func splitTolerance(target int) int { return max(1, target/10) }

// Split divides rows into train and eval, keeping their order. evalFraction must lie in [0, 1).
//
// The eval side gets evalFraction of the rows (rounded, and never all of them). Rows are grouped by prompt, and
// groups are taken in the order of a seeded hash of their prompt, each one that still fits, until the target is
// reached; so a split depends only on the rows, the seed and the fraction, every row of one prompt lands on the
// same side, and adding or removing a few rows moves only groups near the cut. When grouping by prompt lands
// further than splitTolerance from the target (every row shares one prompt, or {"text"} rows that have none),
// the rows are grouped by their prompt and chosen text instead (SplitByRow), which reaches the target on
// repeated prompts while identical rows still stay together.
func Split(rows []Row, evalFraction float64, seed int64) (SplitResult, error) {
	if !(evalFraction >= 0 && evalFraction < 1) {
		return SplitResult{}, fmt.Errorf("evalFraction %v: must be at least 0 and below 1", evalFraction)
	}
	res := SplitResult{Prompts: distinct(rows, func(r Row) string { return r.Prompt })}
	if evalFraction == 0 || len(rows) < 2 {
		res.Train = rows
		return res, nil
	}
	res.Target = min(int(math.Round(evalFraction*float64(len(rows)))), len(rows)-1)
	res.By = SplitByPrompt
	inEval := pick(rows, func(r Row) string { return r.Prompt }, res.Target, seed)
	if n := count(inEval); abs(n-res.Target) > splitTolerance(res.Target) {
		res.By = SplitByRow
		inEval = pick(rows, func(r Row) string { return r.Prompt + "\x00" + r.Chosen }, res.Target, seed)
	}
	for i, r := range rows {
		if inEval[i] {
			res.Eval = append(res.Eval, r)
		} else {
			res.Train = append(res.Train, r)
		}
	}
	return res, nil
}

// pick groups rows by key and marks the rows of the groups taken for eval: groups in the order of their
// seeded hash, each taken when it still fits in target.
func pick(rows []Row, key func(Row) string, target int, seed int64) []bool {
	type group struct {
		key  string
		hash uint64
		rows []int
	}
	byKey := map[string]*group{}
	var groups []*group
	for i, r := range rows {
		k := key(r)
		g := byKey[k]
		if g == nil {
			g = &group{key: k, hash: splitHash(k, seed)}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.rows = append(g.rows, i)
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].hash != groups[j].hash {
			return groups[i].hash < groups[j].hash
		}
		return groups[i].key < groups[j].key
	})
	inEval := make([]bool, len(rows))
	taken := 0
	for _, g := range groups {
		if taken == target {
			break
		}
		if taken+len(g.rows) > target {
			continue
		}
		for _, i := range g.rows {
			inEval[i] = true
		}
		taken += len(g.rows)
	}
	return inEval
}

// splitHash orders groups: FNV-1a of the seed and the key, with a splitmix64 finaliser (FNV's last step is a
// multiply, which leaves similar keys with related high bits).
func splitHash(key string, seed int64) uint64 {
	h := fnv.New64a()
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], uint64(seed))
	h.Write(s[:])
	h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func count(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

func distinct(rows []Row, key func(Row) string) int {
	seen := map[string]bool{}
	for _, r := range rows {
		seen[key(r)] = true
	}
	return len(seen)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
