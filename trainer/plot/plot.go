// Package plot draws a run's training curves as SVG from its metrics.jsonl lines: loss.svg (train and eval loss
// over steps) and, for DPO, rewards.svg (reward accuracy and reward margin over steps, train and eval).
package plot

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// File names written next to metrics.jsonl.
const (
	LossFile    = "loss.svg"
	RewardsFile = "rewards.svg"
)

// Series are drawn from these metrics (TRL's names, as metrics.jsonl has them).
var (
	lossSeries      = []series{{"loss", "train"}, {"eval_loss", "eval"}}
	accuracySeries  = []series{{"rewards/accuracies", "train"}, {"eval_rewards/accuracies", "eval"}}
	marginSeries    = []series{{"rewards/margins", "train"}, {"eval_rewards/margins", "eval"}}
	trainColour     = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	evalColour      = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	width, heightOf = 16 * vg.Centimeter, func(panels int) vg.Length { return vg.Length(panels) * 8 * vg.Centimeter }
)

type series struct{ metric, label string }

// points collects (step, value) of one metric, in step order, leaving out lines without it and non-finite values
// (a diverged step is logged as null and has no point to draw).
func points(lines []map[string]float64, metric string) plotter.XYs {
	var xy plotter.XYs
	for _, m := range lines {
		v, ok := m[metric]
		s, hasStep := m["step"]
		if !ok || !hasStep || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		xy = append(xy, plotter.XY{X: s, Y: v})
	}
	sort.SliceStable(xy, func(i, j int) bool { return xy[i].X < xy[j].X })
	return xy
}

// legendCorner is where a panel's legend goes: top right for a loss (it falls from the top left), top left for
// rewards (they rise towards the top right).
type legendCorner bool

const (
	topRight legendCorner = false
	topLeft  legendCorner = true
)

// rightMargin is blank room right of the panels. gonum places every text by the metrics of its own Liberation
// fonts, while a viewer without them draws a wider substitute: without room, the last x tick (centred on the right
// edge) and a right-aligned legend were cut at the edge of the picture.
const rightMargin = 12 * vg.Millimeter

// panel is one plot of some series; ok is false when none of them has a point.
func panel(lines []map[string]float64, title, yLabel string, ss []series, corner legendCorner) (*plot.Plot, bool, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = bool(corner)
	if corner == topLeft {
		p.Legend.XOffs = vg.Millimeter
	}
	any := false
	for i, s := range ss {
		xy := points(lines, s.metric)
		if len(xy) == 0 {
			continue
		}
		any = true
		c := trainColour
		if i > 0 {
			c = evalColour
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %v", s.metric, err)
		}
		l.Color = c
		l.Width = vg.Points(1.5)
		p.Add(l)
		name := s.label + " " + s.metric
		if len(xy) < 30 { // few points: mark each one (an eval series is often a handful)
			sc, err := plotter.NewScatter(xy)
			if err != nil {
				return nil, false, err
			}
			sc.Color = c
			sc.Shape = draw.CircleGlyph{}
			sc.Radius = vg.Points(2.5)
			p.Add(sc)
			p.Legend.Add(name, l, sc)
		} else {
			p.Legend.Add(name, l)
		}
	}
	return p, any, nil
}

// render stacks the panels in one SVG.
func render(panels []*plot.Plot) ([]byte, error) {
	c := vgsvg.New(width, heightOf(len(panels)))
	dc := draw.New(c)
	grid := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		grid[i] = []*plot.Plot{p}
	}
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadX: vg.Millimeter, PadY: 2 * vg.Millimeter,
		PadLeft: vg.Millimeter, PadRight: rightMargin}
	canvases := plot.Align(grid, tiles, dc)
	for i, p := range panels {
		p.Draw(canvases[i][0])
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Loss renders loss.svg; ok is false when no line has a loss yet.
func Loss(lines []map[string]float64) (svg []byte, ok bool, err error) {
	p, ok, err := panel(lines, "Loss", "loss", lossSeries, topRight)
	if err != nil || !ok {
		return nil, ok, err
	}
	svg, err = render([]*plot.Plot{p})
	return svg, true, err
}

// Rewards renders rewards.svg (DPO): reward accuracy above, reward margin below; ok is false when neither has a
// point.
func Rewards(lines []map[string]float64) (svg []byte, ok bool, err error) {
	acc, okA, err := panel(lines, "Reward accuracy", "rewards/accuracies", accuracySeries, topLeft)
	if err != nil {
		return nil, false, err
	}
	mar, okM, err := panel(lines, "Reward margin", "rewards/margins", marginSeries, topLeft)
	if err != nil || !okA && !okM {
		return nil, false, err
	}
	svg, err = render([]*plot.Plot{acc, mar})
	return svg, true, err
}

// Write renders the plots for the metrics lines into dir (loss.svg, and rewards.svg when dpo) and returns the
// names of the files written. A plot with no point yet is not written.
func Write(dir string, lines []map[string]float64, dpo bool) ([]string, error) {
	type job struct {
		name   string
		render func([]map[string]float64) ([]byte, bool, error)
	}
	jobs := []job{{LossFile, Loss}}
	if dpo {
		jobs = append(jobs, job{RewardsFile, Rewards})
	}
	var written []string
	for _, j := range jobs {
		svg, ok, err := j.render(lines)
		if err != nil {
			return written, fmt.Errorf("plot %s: %v", j.name, err)
		}
		if !ok {
			continue
		}
		if err := writeAtomic(filepath.Join(dir, j.name), svg); err != nil {
			return written, fmt.Errorf("plot %s: %v", j.name, err)
		}
		written = append(written, j.name)
	}
	return written, nil
}

// writeAtomic replaces path in one rename, so a reader (or an upload) never sees half a picture.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
