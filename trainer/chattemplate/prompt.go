package chattemplate

import (
	"errors"
	"fmt"
)

// PrefixError says that a template does not render a conversation's prompt (with add_generation_prompt) as a
// prefix of the whole conversation (without it), so there is no response text to cut off: the prompt a model would
// be given at inference is not the one it would be trained on.
type PrefixError struct {
	Prompt string // the prompt messages rendered with add_generation_prompt
	Full   string // prompt and response messages rendered without it
	Offset int    // the first byte where they differ
}

func (e *PrefixError) Error() string {
	return fmt.Sprintf("chat template does not render the prompt as a prefix of prompt+response: they differ at byte %d, "+
		"where the prompt has %q and the full conversation has %q", e.Offset, excerpt(e.Prompt, e.Offset), excerpt(e.Full, e.Offset))
}

// excerpt returns up to 40 bytes of s from off, "" at its end.
func excerpt(s string, off int) string {
	if off >= len(s) {
		return ""
	}
	end := min(off+40, len(s))
	return s[off:end]
}

// RenderPromptResponse renders a conversation split into prompt and response the way preference and SFT trainers
// split it (TRL's maybe_apply_chat_template): promptText is the prompt messages rendered with
// add_generation_prompt=true, and responseText is what rendering prompt+response with add_generation_prompt=false
// adds after promptText. opts.AddGenerationPrompt is ignored.
//
// Errors: an empty prompt or response; a template error or raise_exception in either rendering (wrapping
// *RaiseError); a *PrefixError when the prompt's rendering is not a prefix of the full one.
func (t *Template) RenderPromptResponse(prompt, response []Message, opts RenderOptions) (promptText, responseText string, err error) {
	if len(prompt) == 0 {
		return "", "", errors.New("chattemplate: the prompt has no messages")
	}
	if len(response) == 0 {
		return "", "", errors.New("chattemplate: the response has no messages")
	}
	opts.AddGenerationPrompt = true
	promptText, err = t.Render(prompt, opts)
	if err != nil {
		return "", "", fmt.Errorf("rendering the prompt: %w", err)
	}
	all := make([]Message, 0, len(prompt)+len(response))
	all = append(append(all, prompt...), response...)
	opts.AddGenerationPrompt = false
	full, err := t.Render(all, opts)
	if err != nil {
		return "", "", fmt.Errorf("rendering prompt+response: %w", err)
	}
	if len(full) < len(promptText) || full[:len(promptText)] != promptText {
		return "", "", &PrefixError{Prompt: promptText, Full: full, Offset: firstDifference(promptText, full)}
	}
	return promptText, full[len(promptText):], nil
}

// firstDifference returns the first byte offset where a and b differ (the shorter's length when one is a prefix of
// the other).
func firstDifference(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
