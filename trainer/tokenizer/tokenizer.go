// Package tokenizer turns text into token ids and back. The trainer only knows the Tokenizer interface, so a BPE
// tokenizer can be added later without touching the model or the data pipeline; today there is the byte-level
// tokenizer of DESIGN.md.
package tokenizer

// Tokenizer maps text to ids and back. BOS, EOS and PAD are ids inside [0, VocabSize) that never come out of
// Encode.
type Tokenizer interface {
	// Name is the type written to tokenizer.json ("byte").
	Name() string
	VocabSize() int
	BOS() int
	EOS() int
	PAD() int
	// Encode returns the ids of the text, without BOS or EOS.
	Encode(text string) []int
	// Decode returns the text of the ids; special ids produce no text.
	Decode(ids []int) string
}
