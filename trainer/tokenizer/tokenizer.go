// Package tokenizer turns text into token ids and back. The trainer only knows the Tokenizer interface. There are
// two kinds: the byte-level tokenizer of DESIGN.md (Byte), and a reader of Hugging Face tokenizer.json files (HF,
// and Pretrained, which adds tokenizer_config.json's and generation_config.json's special tokens) for pretrained
// models. The byte tokenizer also exists as a tokenizer.json (ByteTokenizerJSON) that HF and Hugging Face's own
// libraries read with the same ids.
package tokenizer

// Tokenizer maps text to ids and back.
type Tokenizer interface {
	// Name is "byte" for Byte (the type written to DESIGN.md's tokenizer.json) and "huggingface" for Pretrained.
	Name() string
	// VocabSize is the number of ids the tokenizer produces (its highest id + 1).
	VocabSize() int
	// BOS is the id that starts a sequence; -1 when the model has none (Qwen3).
	BOS() int
	// EOS is the id that ends a training response.
	EOS() int
	// PAD is the id padding positions hold (always masked out of the loss). A model without a pad token pads with
	// EOS (Pretrained.PadIsEOS): find a sequence's end by its length or mask, not by searching for PAD.
	PAD() int
	// Encode returns the ids of the text, without the BOS or EOS a tokenizer adds around a sequence. For a
	// Hugging Face tokenizer, special-token text inside the text (e.g. "<|im_start|>") becomes its id, as in
	// Hugging Face; Byte never produces BOS, EOS or PAD.
	Encode(text string) []int
	// Decode returns the text of the ids; special ids produce no text.
	Decode(ids []int) string
}
