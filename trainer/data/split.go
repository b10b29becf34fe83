package data

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
)

// IsEval says whether a prompt belongs to the eval set. It depends only on the prompt, the seed and the fraction,
// so every row of one prompt lands on the same side, and adding or removing other rows moves nothing.
func IsEval(prompt string, evalFraction float64, seed int64) bool {
	if evalFraction <= 0 {
		return false
	}
	h := fnv.New64a()
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], uint64(seed))
	h.Write(s[:])
	h.Write([]byte(prompt))
	// FNV-1a's last step is a multiply, which leaves similar prompts with related high bits; a splitmix64
	// finaliser spreads them so the fraction holds for prompts that differ in one byte.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/(1<<53) < evalFraction
}

// Split divides rows into train and eval by IsEval, keeping their order. evalFraction must lie in [0, 1).
func Split(rows []Row, evalFraction float64, seed int64) (train, eval []Row, err error) {
	if !(evalFraction >= 0 && evalFraction < 1) {
		return nil, nil, fmt.Errorf("evalFraction %v: must be at least 0 and below 1", evalFraction)
	}
	for _, r := range rows {
		if IsEval(r.Prompt, evalFraction, seed) {
			eval = append(eval, r)
		} else {
			train = append(train, r)
		}
	}
	return train, eval, nil
}
