package tokenizer

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// bpe is a tokenizer.json "BPE" model (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with
// Subword Units"), applied the way Hugging Face's Rust crate applies it: a word starts as its characters (or, with
// byte_fallback, the <0xNN> tokens of a character missing from the vocabulary), then the pair of adjacent symbols
// with the lowest merge rank (leftmost on ties) is merged until no pair has a merge. A heap keeps this
// O(n log n) per word: Llama-2-style files have no pre-tokenizer, so a whole text is one word.
type bpe struct {
	vocab        map[string]int
	merges       map[uint64]mergeInfo // key: left id << 32 | right id
	unk          int                  // -1: none
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	byteIDs      [256]int

	cacheMu sync.RWMutex
	cache   map[string][]int

	dropped atomic.Int64 // characters dropped: not in the vocabulary, no byte fallback, no unk_token
}

type mergeInfo struct {
	rank  int32
	newID int32
}

const (
	bpeCacheEntries = 1 << 16
	bpeCacheMaxWord = 256 // bytes; longer words are not cached
)

type bpeJSON struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

// modelJSON reads tokenizer.json's model in one pass (the files are up to 33 MB): the BPE fields, and the vocab
// kept raw because other model types write it as a list.
type modelJSON struct {
	bpeJSON
	Vocab json.RawMessage `json:"vocab"`
}

func buildBPE(mj *modelJSON) (*bpe, error) {
	if mj.Type != "" && mj.Type != "BPE" {
		return nil, componentError("model", mj.Type, []string{"BPE"})
	}
	j := mj.bpeJSON
	if err := json.Unmarshal(mj.Vocab, &j.Vocab); err != nil {
		return nil, fmt.Errorf("model BPE: field vocab: %w", err)
	}
	if j.Dropout != nil && *j.Dropout != 0 {
		return nil, fmt.Errorf("model BPE: dropout %g is not supported (tokenization must be deterministic)", *j.Dropout)
	}
	if len(j.Vocab) == 0 {
		return nil, fmt.Errorf("model BPE: vocab is empty")
	}
	m := &bpe{vocab: j.Vocab, unk: -1, fuseUnk: j.FuseUnk, byteFallback: j.ByteFallback, ignoreMerges: j.IgnoreMerges,
		cache: map[string][]int{}}
	if j.ContinuingSubwordPrefix != nil {
		m.prefix = *j.ContinuingSubwordPrefix
	}
	if j.EndOfWordSuffix != nil {
		m.suffix = *j.EndOfWordSuffix
	}
	if j.UnkToken != nil {
		id, ok := j.Vocab[*j.UnkToken]
		if !ok {
			return nil, fmt.Errorf("model BPE: unk_token %q is not in the vocab", *j.UnkToken)
		}
		m.unk = id
	}
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := j.Vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteIDs[b] = id
		}
	}
	pairs, err := parseMerges(j.Merges)
	if err != nil {
		return nil, fmt.Errorf("model BPE: %w", err)
	}
	m.merges = make(map[uint64]mergeInfo, len(pairs))
	for rank, p := range pairs {
		a, okA := j.Vocab[p[0]]
		b, okB := j.Vocab[p[1]]
		if !okA || !okB {
			return nil, fmt.Errorf("model BPE: merges[%d] %q: a token is not in the vocab", rank, p[0]+" "+p[1])
		}
		right := p[1]
		if m.prefix != "" && strings.HasPrefix(right, m.prefix) {
			right = right[len(m.prefix):]
		}
		n, ok := j.Vocab[p[0]+right]
		if !ok {
			return nil, fmt.Errorf("model BPE: merges[%d] %q: the merged token %q is not in the vocab", rank, p[0]+" "+p[1], p[0]+right)
		}
		// A repeated pair takes the later rank, as the Rust crate's HashMap collect does.
		m.merges[uint64(a)<<32|uint64(uint32(b))] = mergeInfo{rank: int32(rank), newID: int32(n)}
	}
	return m, nil
}

// parseMerges reads merges written as "a b" strings or as ["a", "b"] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	// The first element's opening character tells the two forms apart without a failed full parse.
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	var strs []string
	if len(trimmed) > 0 && trimmed[0] == '[' && !bytes.HasPrefix(bytes.TrimLeft(trimmed[1:], " \t\r\n"), []byte("[")) {
		if err := json.Unmarshal(raw, &strs); err != nil {
			return nil, fmt.Errorf("merges: %w", err)
		}
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return nil, fmt.Errorf("merges[%d] %q is not two tokens separated by a space", i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("merges: neither \"a b\" strings nor [a, b] pairs: %w", err)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("merges[%d] has %d tokens, want 2", i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

// symbol is one node of a word's doubly linked list of symbols during merging.
type symbol struct {
	id         int32
	prev, next int32
	len        int32 // bytes of the word it covers; 0 once merged away
}

type mergeCand struct {
	pos   int32
	rank  int32
	newID int32
}

type mergeHeap []mergeCand

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(mergeCand)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// tokenize appends the ids of one pre-tokenized word to out.
func (m *bpe) tokenize(w string, out []int) []int {
	if w == "" {
		return out
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[w]; ok {
			return append(out, id)
		}
	}
	cacheable := len(w) <= bpeCacheMaxWord
	if cacheable {
		m.cacheMu.RLock()
		ids, ok := m.cache[w]
		m.cacheMu.RUnlock()
		if ok {
			return append(out, ids...)
		}
	}
	ids, dropped := m.merge(w)
	if dropped > 0 {
		m.dropped.Add(int64(dropped)) // not cached, so that every encode counts its drops
		return append(out, ids...)
	}
	if cacheable {
		m.cacheMu.Lock()
		if len(m.cache) < bpeCacheEntries {
			m.cache[w] = ids
		}
		m.cacheMu.Unlock()
	}
	return append(out, ids...)
}

// merge returns the ids of a word and how many of its characters had no token.
func (m *bpe) merge(w string) ([]int, int) {
	syms := make([]symbol, 0, len(w))
	add := func(id, n int) {
		i := int32(len(syms))
		syms = append(syms, symbol{id: int32(id), prev: i - 1, next: i + 1, len: int32(n)})
	}
	unkID, unkLen, dropped := -1, 0, 0
	for i, r := range w {
		n := utf8.RuneLen(r)
		s := w[i : i+n]
		if i > 0 && m.prefix != "" {
			s = m.prefix + s
		}
		if i+n == len(w) && m.suffix != "" {
			s += m.suffix
		}
		if id, ok := m.vocab[s]; ok {
			if unkID >= 0 {
				add(unkID, unkLen)
				unkID = -1
			}
			add(id, n)
			continue
		}
		if m.byteFallback {
			ok := true
			for k := 0; k < len(s); k++ {
				if m.byteIDs[s[k]] < 0 {
					ok = false
					break
				}
			}
			if ok {
				for k := 0; k < len(s); k++ {
					add(m.byteIDs[s[k]], 1)
				}
				continue
			}
		}
		if m.unk >= 0 {
			switch {
			case unkID >= 0 && m.fuseUnk:
				unkLen += n
			case unkID >= 0:
				add(unkID, unkLen)
				unkID, unkLen = m.unk, n
			default:
				unkID, unkLen = m.unk, n
			}
		}
		// Without unk_token the Rust crate drops the character; so does this (the tests compare against it), and
		// counts it (HF.DroppedChars).
		if m.unk < 0 {
			dropped++
		}
	}
	if unkID >= 0 {
		add(unkID, unkLen)
	}
	if len(syms) == 0 {
		return nil, dropped
	}
	syms[len(syms)-1].next = -1

	h := make(mergeHeap, 0, len(syms))
	for i := 0; i+1 < len(syms); i++ {
		if mi, ok := m.pair(syms[i].id, syms[i+1].id); ok {
			h = append(h, mergeCand{pos: int32(i), rank: mi.rank, newID: mi.newID})
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		top := heap.Pop(&h).(mergeCand)
		cur := &syms[top.pos]
		if cur.len == 0 || cur.next < 0 {
			continue
		}
		nextPos := cur.next
		right := syms[nextPos]
		if mi, ok := m.pair(cur.id, right.id); !ok || mi.newID != top.newID {
			continue // stale
		}
		cur.id = top.newID
		cur.len += right.len
		cur.next = right.next
		syms[nextPos].len = 0
		if right.next >= 0 {
			syms[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if mi, ok := m.pair(syms[cur.prev].id, cur.id); ok {
				heap.Push(&h, mergeCand{pos: cur.prev, rank: mi.rank, newID: mi.newID})
			}
		}
		if cur.next >= 0 {
			if mi, ok := m.pair(cur.id, syms[cur.next].id); ok {
				heap.Push(&h, mergeCand{pos: top.pos, rank: mi.rank, newID: mi.newID})
			}
		}
	}
	ids := make([]int, 0, len(syms))
	for _, s := range syms {
		if s.len != 0 {
			ids = append(ids, int(s.id))
		}
	}
	return ids, dropped
}

func (m *bpe) pair(a, b int32) (mergeInfo, bool) {
	mi, ok := m.merges[uint64(a)<<32|uint64(uint32(b))]
	return mi, ok
}
