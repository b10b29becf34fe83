// Package storydata is the project's preference dataset for pretrained story models (TinyStories-style, such as
// stories260K): short story openings about two characters, where the preferred continuation gives the next
// sentence to the friend, the character the opening introduced second.
//
// A prompt reads
//
//	Once upon a time, there was a little girl named Lily. She had a friend named Max. They liked to play in the
//	park. One day,
//
// and the pair is chosen "Max went to the park." against rejected "Lily went to the park.", "she went to the
// park." or "they went to the park.": the same sentence with the main character or both as its subject, which is
// what a TinyStories model writes by habit. The rule (Check) is that the continuation's first word is the friend's name.
// It is checkable in code on any continuation, the base model seldom meets it (stories260K: 17 to 23 of 100
// held-out openings; it follows the main character), and learning it needs the model to copy a name from the
// prompt rather than a fixed word: held-out prompts pair names, activities and sentences in combinations the
// training rows do not have. Stories gives SFT rows on the same openings without the preference, so that SFT
// then DPO shows what DPO adds (docs/learning-pretrained.md).
//
// Responses start with a space (" Max went ..."): training tokenizes a plain-text row as prompt + response, one
// text (trainer/data.Encoder), so prompt and response must read as the story does, "One day, Max went ...", with
// every tokenizer (SentencePiece's "▁Max" and byte-level BPE's "ĠMax" alike), as TRL expects of prompt/chosen
// rows too.
//
// Story (prompt and chosen continuation together) is the plain text form of a row, TinyStories-like text on
// which a test measures that preference tuning keeps the model's language modelling (its loss) intact.
package storydata

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"unicode"

	"github.com/preftune/preftune/trainer/data"
)

var (
	girls = []string{"Lily", "Sue", "Anna", "Mia", "Lucy", "Amy", "Jane", "Kate"}
	boys  = []string{"Tom", "Ben", "Tim", "Sam", "Max", "Jack", "Bob", "Joe"}
	// activities finish "They liked to ...".
	activities = []string{"play in the park", "play with a ball", "read books", "build with blocks",
		"run and jump", "draw pictures", "sing songs", "play in the garden", "look at the stars", "eat cookies"}
	// sentences finish "<subject> ...", the continuation after "One day,".
	sentences = []string{"went to the park.", "found a big box.", "saw a little bird.", "had a new toy.",
		"wanted to play a game.", "made a big cake.", "saw a big tree.", "found a shiny stone.",
		"went to the beach.", "saw a funny dog.", "wanted to fly a kite.", "found a red ball."}
)

// Config shapes the rows; the zero Config is the dataset the docs describe (it has no settings yet).
type Config struct{}

// Generate returns n rows with the zero Config.
func Generate(n int, seed uint64) []data.Row { return Config{}.Generate(n, seed) }

// Generate returns n preference rows in standard form; the same seed always gives the same rows. Line numbers are
// those the rows get when written with Write. The two characters always have different names; the rejected
// response's subject is, in a third of the rows each, the main character's name, its pronoun or "they" (lower
// case after "One day,"): the three subjects stories260K writes there.
func (c Config) Generate(n int, seed uint64) []data.Row {
	return c.generate(n, seed, false)
}

// Stories returns n SFT rows (prompt and completion; Rejected empty): story openings like Generate's, each
// continued by its sentence with the subject drawn as stories go, not as preferred: the main character's name,
// its pronoun or "they" with 2 chances in 7 each, the friend's name with 1 in 7. Supervised fine-tuning on them
// teaches a model the openings and the sentences without the preference, which DPO on Generate's pairs then
// teaches. The same seed gives the same rows; a seed gives other openings than Generate's with that seed.
func (c Config) Stories(n int, seed uint64) []data.Row {
	return c.generate(n, seed, true)
}

func (c Config) generate(n int, seed uint64, stories bool) []data.Row {
	stream := uint64(0x5709)
	if stories {
		stream = 0x5710
	}
	rng := rand.New(rand.NewPCG(seed, stream))
	rows := make([]data.Row, 0, max(n, 0))
	const sp = " " // see the package doc
	for len(rows) < n {
		girl := rng.IntN(2) == 0
		main, pronoun, kind := pick(rng, boys), "he", "boy"
		if girl {
			main, pronoun, kind = pick(rng, girls), "she", "girl"
		}
		friend := pick(rng, girls)
		if rng.IntN(2) == 0 {
			friend = pick(rng, boys)
		}
		if friend == main {
			continue
		}
		act, sent := pick(rng, activities), pick(rng, sentences)
		prompt := Prompt(main, kind, friend, act)
		if stories {
			subject := [...]string{main, main, pronoun, pronoun, "they", "they", friend}[rng.IntN(7)]
			rows = append(rows, data.Row{Line: len(rows) + 1, Prompt: prompt, Chosen: sp + subject + " " + sent})
			continue
		}
		rejected := [...]string{main, pronoun, "they"}[rng.IntN(3)]
		rows = append(rows, data.Row{Line: len(rows) + 1, Prompt: prompt,
			Chosen: sp + friend + " " + sent, Rejected: sp + rejected + " " + sent})
	}
	return rows
}

// HeldOut returns n preference rows, drawn as Generate(.., seed) draws them, whose prompts are not in seen and
// not repeated: openings to measure the rule on that training never showed. It fails when the draws run out (the
// openings are about 2,400 in all).
func (c Config) HeldOut(n int, seed uint64, seen map[string]bool) ([]data.Row, error) {
	taken := map[string]bool{}
	var out []data.Row
	for _, r := range c.Generate(40*n, seed) {
		if len(out) == n {
			break
		}
		if !seen[r.Prompt] && !taken[r.Prompt] {
			taken[r.Prompt] = true
			r.Line = len(out) + 1
			out = append(out, r)
		}
	}
	if len(out) < n {
		return out, fmt.Errorf("only %d openings of %d draws are held out (not among the %d excluded), want %d", len(out), 40*n, len(seen), n)
	}
	return out, nil
}

func pick(rng *rand.Rand, s []string) string { return s[rng.IntN(len(s))] }

// Prompt is a story opening: main is a kind ("girl" or "boy") named main, friend the friend's name, activity what
// they liked to do.
func Prompt(main, kind, friend, activity string) string {
	pronoun := "He"
	if kind == "girl" {
		pronoun = "She"
	}
	return fmt.Sprintf("Once upon a time, there was a little %s named %s. %s had a friend named %s. They liked to %s. One day,",
		kind, main, pronoun, friend, activity)
}

// Friend returns the friend's name in a prompt of this dataset (the name after "a friend named "); ok is false
// for any other text.
func Friend(prompt string) (string, bool) {
	_, rest, ok := strings.Cut(prompt, " had a friend named ")
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, ".")
	if !ok || name == "" || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsLetter(r) }) {
		return "", false
	}
	return name, true
}

// Check is the dataset's rule: the continuation's first word (after leading white space, up to the first
// character that is not a letter) is the friend's name, with its capital letter.
func Check(prompt, continuation string) bool {
	friend, ok := Friend(prompt)
	if !ok {
		return false
	}
	w := strings.TrimLeftFunc(continuation, unicode.IsSpace)
	if i := strings.IndexFunc(w, func(r rune) bool { return !unicode.IsLetter(r) }); i >= 0 {
		w = w[:i]
	}
	return w == friend
}

// Story is a row's plain text: the opening and the chosen continuation, one space between them.
func Story(r data.Row) string {
	return r.Prompt + " " + strings.TrimLeft(r.Chosen, " ")
}

// Write writes rows as standard-format JSON Lines ({"prompt", "chosen", "rejected"}), or, for rows without a
// rejected response (Stories), as promptCompletion JSON Lines ({"prompt", "completion"}).
func Write(w io.Writer, rows []data.Row) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range rows {
		if r.Rejected == "" {
			if err := enc.Encode(struct {
				Prompt     string `json:"prompt"`
				Completion string `json:"completion"`
			}{r.Prompt, r.Chosen}); err != nil {
				return err
			}
			continue
		}
		if err := enc.Encode(struct {
			Prompt   string `json:"prompt"`
			Chosen   string `json:"chosen"`
			Rejected string `json:"rejected"`
		}{r.Prompt, r.Chosen, r.Rejected}); err != nil {
			return err
		}
	}
	return nil
}
