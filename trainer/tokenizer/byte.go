package tokenizer

// Byte-level layout from DESIGN.md: ids 0-255 are the bytes themselves, then three special ids.
const (
	ByteBOS       = 256
	ByteEOS       = 257
	BytePAD       = 258
	ByteVocabSize = 259
	// ByteName is the type of the byte tokenizer in tokenizer.json.
	ByteName = "byte"
)

// Byte is the byte-level tokenizer: every byte of the UTF-8 text is one token, so it needs no vocabulary file and
// never fails on any input (a multibyte character becomes several tokens).
type Byte struct{}

// NewByte returns the byte-level tokenizer.
func NewByte() Byte { return Byte{} }

func (Byte) Name() string   { return ByteName }
func (Byte) VocabSize() int { return ByteVocabSize }
func (Byte) BOS() int       { return ByteBOS }
func (Byte) EOS() int       { return ByteEOS }
func (Byte) PAD() int       { return BytePAD }

// Encode returns one id per byte of text.
func (Byte) Encode(text string) []int {
	ids := make([]int, len(text))
	for i := 0; i < len(text); i++ {
		ids[i] = int(text[i])
	}
	return ids
}

// Decode writes the byte of each id below 256 and skips the special ids. The result may be invalid UTF-8 when
// the ids end in the middle of a character (a model's generation can do that); callers that print it should
// sanitise it. Ids outside the vocabulary become U+FFFD so that a bug upstream stays visible.
func (Byte) Decode(ids []int) string {
	buf := make([]byte, 0, len(ids))
	for _, id := range ids {
		switch {
		case id >= 0 && id < 256:
			buf = append(buf, byte(id))
		case id == ByteBOS || id == ByteEOS || id == BytePAD:
		default:
			buf = append(buf, "\uFFFD"...)
		}
	}
	return string(buf)
}
