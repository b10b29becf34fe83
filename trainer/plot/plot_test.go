package plot

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// dpoLines is a short DPO log: a train line per step and an eval line every 2 steps.
func dpoLines() []map[string]float64 {
	var lines []map[string]float64
	for s := 1; s <= 6; s++ {
		f := float64(s)
		lines = append(lines, map[string]float64{"step": f, "loss": 0.7 - 0.05*f, "rewards/accuracies": 0.1 * f,
			"rewards/margins": 0.02 * f})
		if s%2 == 0 {
			lines = append(lines, map[string]float64{"step": f, "eval_loss": 0.72 - 0.04*f,
				"eval_rewards/accuracies": 0.08 * f, "eval_rewards/margins": 0.01 * f})
		}
	}
	return lines
}

// svgTexts parses svg as XML (failing the test if it is not well formed, or not <svg>) and returns its text nodes.
func svgTexts(t *testing.T, svg []byte) string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	var texts strings.Builder
	root := ""
	paths := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not valid XML: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = e.Name.Local
			}
			if e.Name.Local == "path" {
				paths++
			}
		case xml.CharData:
			texts.Write(e)
			texts.WriteByte('\n')
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	if paths == 0 {
		t.Fatal("no <path>: nothing drawn")
	}
	return texts.String()
}

func TestLossSVG(t *testing.T) {
	svg, ok, err := Loss(dpoLines())
	if err != nil || !ok {
		t.Fatalf("Loss: %v %v", ok, err)
	}
	texts := svgTexts(t, svg)
	for _, want := range []string{"Loss", "step", "train loss", "eval eval_loss"} {
		if !strings.Contains(texts, want) {
			t.Errorf("loss.svg has no text %q; texts:\n%s", want, texts)
		}
	}
}

func TestRewardsSVG(t *testing.T) {
	svg, ok, err := Rewards(dpoLines())
	if err != nil || !ok {
		t.Fatalf("Rewards: %v %v", ok, err)
	}
	texts := svgTexts(t, svg)
	for _, want := range []string{"Reward accuracy", "Reward margin", "train rewards/accuracies",
		"eval eval_rewards/accuracies", "train rewards/margins", "eval eval_rewards/margins"} {
		if !strings.Contains(texts, want) {
			t.Errorf("rewards.svg has no text %q", want)
		}
	}
}

// TestPointsSkipNonFinite: null (NaN) values and lines without the metric are not drawn; points are in step order.
func TestPoints(t *testing.T) {
	lines := []map[string]float64{{"step": 2, "loss": 1}, {"step": 1, "loss": 2}, {"step": 3}, {"loss": 5}}
	xy := points(lines, "loss")
	if len(xy) != 2 || xy[0].X != 1 || xy[1].X != 2 {
		t.Errorf("points = %v", xy)
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	got, err := Write(dir, dpoLines(), true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{LossFile, RewardsFile}; !reflect.DeepEqual(got, want) {
		t.Errorf("Write = %q, want %q", got, want)
	}
	for _, name := range got {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		svgTexts(t, b)
	}
	// SFT: no rewards plot; no metrics yet: nothing written.
	if got, err := Write(t.TempDir(), []map[string]float64{{"step": 1, "loss": 2}}, false); err != nil || !reflect.DeepEqual(got, []string{LossFile}) {
		t.Errorf("SFT Write = %q, %v", got, err)
	}
	if got, err := Write(t.TempDir(), nil, true); err != nil || len(got) != 0 {
		t.Errorf("empty Write = %q, %v", got, err)
	}
}

func TestReadMetrics(t *testing.T) {
	p := filepath.Join(t.TempDir(), "metrics.jsonl")
	os.WriteFile(p, []byte("{\"step\":1,\"loss\":2,\"grad_norm\":null}\n{\"step\":2,\"lo"), 0o644)
	lines, err := ReadMetrics(p)
	if err != nil || len(lines) != 1 || lines[0]["loss"] != 2 {
		t.Fatalf("ReadMetrics = %v, %v (torn last line dropped)", lines, err)
	}
	if _, ok := lines[0]["grad_norm"]; ok {
		t.Error("null value kept")
	}
	os.WriteFile(p, []byte("{\"step\":1}\nnot json\n{\"step\":2}\n"), 0o644)
	if _, err := ReadMetrics(p); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line: %v, want an error naming line 2", err)
	}
}

// TestTextsInsideViewBox: every text of loss.svg and rewards.svg (legend entries, the last x tick) lies inside
// the picture's view box, with a width estimated wider than gonum's own font metrics (0.6 em a character): a
// viewer that draws another font than Liberation must not cut "train rewards/accuracies" or the last step.
func TestTextsInsideViewBox(t *testing.T) {
	var lines []map[string]float64
	for s := 1; s <= 12000; s += 100 {
		f := float64(s)
		lines = append(lines, map[string]float64{"step": f, "loss": 7000 / (f + 10), "rewards/accuracies": f / 12000,
			"rewards/margins": f / 1000, "eval_loss": 8000 / (f + 10), "eval_rewards/accuracies": f / 13000,
			"eval_rewards/margins": f / 1100})
	}
	for name, render := range map[string]func([]map[string]float64) ([]byte, bool, error){"loss.svg": Loss, "rewards.svg": Rewards} {
		svg, ok, err := render(lines)
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", name, ok, err)
		}
		width, texts := svgTextBoxes(t, svg)
		legend := 0
		for _, tx := range texts {
			if strings.HasPrefix(tx.text, "train ") || strings.HasPrefix(tx.text, "eval ") {
				legend++
			}
			if end := tx.x + 0.6*tx.size*float64(len([]rune(tx.text))); tx.x < 0 || end > width {
				t.Errorf("%s: text %q spans x %.1f to %.1f, outside the view box [0, %.1f]", name, tx.text, tx.x, end, width)
			}
		}
		if legend == 0 {
			t.Errorf("%s: no legend text found among %v", name, texts)
		}
	}
}

type svgText struct {
	text    string
	x, size float64
}

// svgTextBoxes returns the view box's width and the horizontal texts (gonum writes each <text> at its left end,
// with the font size in its style). Vertical texts (the y-axis label, rotated) are left out.
func svgTextBoxes(t *testing.T, svg []byte) (float64, []svgText) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	var width float64
	var out []svgText
	var cur *svgText
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range e.Attr {
				attr[a.Name.Local] = a.Value
			}
			switch e.Name.Local {
			case "svg":
				f := strings.Fields(attr["viewBox"])
				if len(f) != 4 {
					t.Fatalf("viewBox %q", attr["viewBox"])
				}
				width, _ = strconv.ParseFloat(f[2], 64)
			case "text":
				if strings.Contains(attr["transform"], "rotate") {
					continue
				}
				x, _ := strconv.ParseFloat(attr["x"], 64)
				_, size, _ := strings.Cut(attr["style"], "font-size:")
				px, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(size), "px"), 64)
				cur = &svgText{x: x, size: px}
			}
		case xml.CharData:
			if cur != nil {
				cur.text = string(e)
				out = append(out, *cur)
				cur = nil
			}
		}
	}
	if width == 0 {
		t.Fatal("no view box width")
	}
	return width, out
}
