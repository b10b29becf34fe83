package data

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/preftune/preftune/trainer/contract"
)

// Report size limits: the report travels in a termination message (contract.MaxTerminationMessageBytes), so it
// lists few invalid rows, cuts long reasons, and drops listed rows until it fits reportBudget.
const (
	DefaultMaxInvalidRows = 10
	maxListedInvalidRows  = 50
	maxReasonBytes        = 160
	reportBudget          = 3072
)

// Length-bias thresholds: preference data where one side is almost always longer teaches length, not quality.
const (
	lengthBiasHigh     = 0.7
	lengthBiasLow      = 0.3
	lengthBiasMinPairs = 10 // pairs of differing lengths needed before the share says anything
)

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)
	// North-American style numbers with separators, or international numbers starting with +.
	phoneRE = regexp.MustCompile(`(?:\(\d{3}\)\s?|\b\d{3}[-. ])\d{3}[-. ]\d{4}\b|\+\d{1,3}[-. ]?\d{1,4}(?:[-. ]?\d{2,4}){2,4}\b`)
)

// Inspect reads the file of a dataset configuration and reports on it. The error is for a file that cannot be
// read as a dataset at all; invalid rows are in the report (Counts.Invalid, InvalidRows).
func Inspect(path string, cfg contract.DatasetConfig, maxInvalidRows int) (contract.DatasetReport, error) {
	d, err := ReadFile(path, OptionsOf(cfg))
	if err != nil {
		return contract.DatasetReport{}, err
	}
	return Report(d, cfg, maxInvalidRows)
}

// Report describes a dataset read with cfg (its split and invalid-rows policy): counts, lengths, the first invalid
// rows, how the split grouped the rows, and warnings with counts. maxInvalidRows <= 0 means
// DefaultMaxInvalidRows. The error is for a configuration that cannot be applied (evalFraction, invalidRows).
func Report(d *Dataset, cfg contract.DatasetConfig, maxInvalidRows int) (contract.DatasetReport, error) {
	split, err := Split(d.Rows, cfg.EvalFraction, cfg.Seed)
	if err != nil {
		return contract.DatasetReport{}, fmt.Errorf("dataset.evalFraction: %w", err)
	}
	train, eval := split.Train, split.Eval
	rep := contract.DatasetReport{
		Format:  d.Format,
		Digest:  d.Digest,
		Counts:  contract.Counts{Total: d.Total, Pairs: len(d.Rows), Train: len(train), Eval: len(eval), Invalid: len(d.Invalid)},
		SplitBy: split.By,
	}
	skipped, err := d.CheckInvalidRows(cfg.InvalidRows)
	switch {
	case cfg.InvalidRows != "" && cfg.InvalidRows != contract.InvalidRowsReject && cfg.InvalidRows != contract.InvalidRowsSkip:
		return contract.DatasetReport{}, fmt.Errorf("dataset.%w", err)
	case cfg.InvalidRows == contract.InvalidRowsSkip && err == nil:
		rep.Counts.Skipped = len(d.Invalid)
	}
	pref := d.Preference()
	var promptSum, chosenSum, rejectedSum, longer, differ, dups, same, emails, phones int
	seen := map[Row]bool{}
	for _, r := range d.Rows {
		promptSum += len(r.Prompt)
		chosenSum += len(r.Chosen)
		rejectedSum += len(r.Rejected)
		rep.Lengths.PromptMax = max(rep.Lengths.PromptMax, len(r.Prompt))
		rep.Lengths.ChosenMax = max(rep.Lengths.ChosenMax, len(r.Chosen))
		rep.Lengths.RejectedMax = max(rep.Lengths.RejectedMax, len(r.Rejected))
		if len(r.Chosen) > len(r.Rejected) {
			longer++
		}
		if len(r.Chosen) != len(r.Rejected) {
			differ++
		}
		if pref && r.Chosen == r.Rejected {
			same++
		}
		key := Row{Prompt: r.Prompt, Chosen: r.Chosen, Rejected: r.Rejected}
		if seen[key] {
			dups++
		}
		seen[key] = true
		text := r.Prompt + "\n" + r.Chosen + "\n" + r.Rejected
		if emailRE.MatchString(text) {
			emails++
		}
		if phoneRE.MatchString(text) {
			phones++
		}
	}
	if n := float64(len(d.Rows)); n > 0 {
		rep.Lengths.PromptMean = round1(float64(promptSum) / n)
		rep.Lengths.ChosenMean = round1(float64(chosenSum) / n)
		if pref {
			rep.Lengths.RejectedMean = round1(float64(rejectedSum) / n)
			rep.ChosenLongerFraction = round3(float64(longer) / n)
		}
	}
	warn := func(n int, one, many string) {
		if n > 0 {
			rep.Warnings = append(rep.Warnings, Count(n, one, many))
		}
	}
	if skipped != "" {
		rep.Warnings = append(rep.Warnings, skipped)
	}
	rep.Warnings = append(rep.Warnings, RowWarnings(d.Rows, pref)...)
	rep.Warnings = append(rep.Warnings, SplitWarnings(split, cfg.EvalFraction)...)
	warn(dups, "exact duplicate row", "exact duplicate rows")
	warn(same, "pair with chosen identical to rejected", "pairs with chosen identical to rejected")
	// Ties carry no length signal (short exact answers are often equally long), so the bias is judged on the
	// pairs whose lengths differ; ChosenLongerFraction itself stays the share of all pairs, as the contract says.
	if share := float64(longer) / float64(max(differ, 1)); pref && differ >= lengthBiasMinPairs && (share > lengthBiasHigh || share < lengthBiasLow) {
		if share > lengthBiasHigh {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("length bias: chosen is longer in %d of %d pairs whose lengths differ", longer, differ))
		} else {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("length bias: chosen is shorter in %d of %d pairs whose lengths differ", differ-longer, differ))
		}
	}
	warn(emails, "row contains e-mail addresses", "rows contain e-mail addresses")
	warn(phones, "row contains phone numbers", "rows contain phone numbers")
	listInvalid(&rep, d.Invalid, maxInvalidRows)
	return rep, nil
}

// AddInvalidRows counts in rep, the report Report made of d with cfg, rows found invalid after reading (the rows a
// chat template cannot render, EncodeResult.UnrenderedRows): they leave Counts.Pairs and their side of cfg's split
// (a run splits before it encodes), join Counts.Invalid, Counts.Skipped under invalidRows: Skip, and the listed
// invalid rows in line order; under Skip the skipped-rows warning counts them with the rows invalid on reading.
// The error is for Skip with no valid row left.
func AddInvalidRows(rep *contract.DatasetReport, d *Dataset, cfg contract.DatasetConfig, invalid []contract.InvalidRow, maxInvalidRows int) error {
	if len(invalid) == 0 {
		return nil
	}
	split, err := Split(d.Rows, cfg.EvalFraction, cfg.Seed)
	if err != nil {
		return fmt.Errorf("dataset.evalFraction: %w", err)
	}
	inEval := map[int]bool{}
	for _, r := range split.Eval {
		inEval[r.Line] = true
	}
	c := &rep.Counts
	for _, r := range invalid {
		c.Pairs--
		if inEval[r.Line] {
			c.Eval--
		} else {
			c.Train--
		}
	}
	c.Invalid += len(invalid)
	all := append(append([]contract.InvalidRow(nil), d.Invalid...), invalid...)
	slices.SortStableFunc(all, func(a, b contract.InvalidRow) int { return a.Line - b.Line })
	if cfg.InvalidRows == contract.InvalidRowsSkip {
		c.Skipped = len(all)
		w := SkippedWarning(all, d.Total)
		if i := slices.Index(rep.Warnings, skippedWarningOf(d)); len(d.Invalid) > 0 && i >= 0 {
			rep.Warnings[i] = w
		} else {
			rep.Warnings = append([]string{w}, rep.Warnings...)
		}
	}
	listInvalid(rep, all, maxInvalidRows)
	if cfg.InvalidRows == contract.InvalidRowsSkip && c.Pairs == 0 {
		return fmt.Errorf("no valid row to train on (invalidRows Skip): all %s invalid", Count(d.Total, "row is", "rows are"))
	}
	return nil
}

func skippedWarningOf(d *Dataset) string {
	if len(d.Invalid) == 0 {
		return ""
	}
	return SkippedWarning(d.Invalid, d.Total)
}

// RowWarnings are the warnings about single rows that are valid but probably not what the user meant to train on,
// each with its count and first lines: empty responses (implicit-prompt rows where one side ends where the reply
// starts: the model learns to end the turn there) and responses that hold only whitespace.
func RowWarnings(rows []Row, preference bool) []string {
	var emptyChosen, emptyRejected, blank []int
	for _, r := range rows {
		switch {
		case r.Chosen == "":
			emptyChosen = append(emptyChosen, r.Line)
		case preference && r.Rejected == "":
			emptyRejected = append(emptyRejected, r.Line)
		}
		if (r.Chosen != "" && strings.TrimSpace(r.Chosen) == "") || (preference && r.Rejected != "" && strings.TrimSpace(r.Rejected) == "") {
			blank = append(blank, r.Line)
		}
	}
	var out []string
	if len(emptyChosen) > 0 {
		out = append(out, fmt.Sprintf("%s an empty chosen response (only the end-of-turn token is trained "+
			"on: the model learns to say nothing there): %s", rowsHave(len(emptyChosen)), lineList(emptyChosen)))
	}
	if len(emptyRejected) > 0 {
		out = append(out, fmt.Sprintf("%s an empty rejected response (saying nothing is the rejected "+
			"reply): %s", rowsHave(len(emptyRejected)), lineList(emptyRejected)))
	}
	if len(blank) > 0 {
		out = append(out, fmt.Sprintf("%s a response that is only whitespace: %s", rowsHave(len(blank)), lineList(blank)))
	}
	return out
}

func rowsHave(n int) string { return Count(n, "row has", "rows have") }

// SplitWarnings say when a split is not what its fraction promised: nothing held out although a fraction was
// asked for, or rows of one prompt on both sides because the split had to group by row.
func SplitWarnings(s SplitResult, evalFraction float64) []string {
	var out []string
	n := len(s.Train) + len(s.Eval)
	if evalFraction > 0 && len(s.Eval) == 0 {
		out = append(out, fmt.Sprintf("the eval split is empty: evalFraction %g of %d rows holds out no row", evalFraction, n))
	}
	if s.By == SplitByRow {
		if shared := sharedPrompts(s.Train, s.Eval); shared > 0 && !(s.Prompts == 1 && s.Train[0].Prompt == "") {
			out = append(out, fmt.Sprintf("split by row, not by prompt: the %d rows have %d distinct prompts, too few "+
				"to hold out %d rows by prompt, so %d prompts have rows in both train and eval", n, s.Prompts, s.Target, shared))
		}
	} else if shared := sharedPrompts(s.Train, s.Eval); shared > 0 {
		out = append(out, fmt.Sprintf("%s in both train and eval", Count(shared, "prompt", "prompts")))
	}
	return out
}

// sharedPrompts counts distinct prompts found on both sides; a split by prompt makes it 0.
func sharedPrompts(train, eval []Row) int {
	inTrain := map[string]bool{}
	for _, r := range train {
		inTrain[r.Prompt] = true
	}
	shared := map[string]bool{}
	for _, r := range eval {
		if inTrain[r.Prompt] {
			shared[r.Prompt] = true
		}
	}
	return len(shared)
}

func listInvalid(rep *contract.DatasetReport, invalid []contract.InvalidRow, limit int) {
	if limit <= 0 {
		limit = DefaultMaxInvalidRows
	}
	limit = min(limit, maxListedInvalidRows, len(invalid))
	rep.InvalidRows = nil
	for _, r := range invalid[:limit] {
		r.Reason = truncate(r.Reason, maxReasonBytes)
		r.Field = truncate(r.Field, maxReasonBytes/2)
		rep.InvalidRows = append(rep.InvalidRows, r)
	}
	for len(rep.InvalidRows) > 0 {
		b, _ := json.Marshal(rep)
		if len(b) <= reportBudget {
			break
		}
		rep.InvalidRows = rep.InvalidRows[:len(rep.InvalidRows)-1]
	}
}

// truncate cuts s to at most n bytes on a character boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }
func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
