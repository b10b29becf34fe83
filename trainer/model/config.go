package model

import "fmt"

// Config is the architecture.
type Config struct {
	VocabSize, ContextLength, Layers, DModel, Heads int
}

// Validate reports the first field that cannot make a model.
func (c Config) Validate() error {
	switch {
	case c.VocabSize < 1:
		return fmt.Errorf("model: vocabSize is %d, want >= 1", c.VocabSize)
	case c.ContextLength < 1:
		return fmt.Errorf("model: contextLength is %d, want >= 1", c.ContextLength)
	case c.Layers < 1:
		return fmt.Errorf("model: layers is %d, want >= 1", c.Layers)
	case c.Heads < 1:
		return fmt.Errorf("model: heads is %d, want >= 1", c.Heads)
	case c.DModel < 1 || c.DModel%c.Heads != 0:
		return fmt.Errorf("model: dModel is %d, want a positive multiple of heads (%d)", c.DModel, c.Heads)
	}
	return nil
}

// ParamShape is one weight's name and shape.
type ParamShape struct {
	Name  string
	Shape []int
}

// Shapes lists the weights in their stable order: wte, wpe, each block's in GPT-2's order, then ln_f.
func (c Config) Shapes() []ParamShape {
	d, v := c.DModel, c.VocabSize
	s := []ParamShape{{"wte.weight", []int{v, d}}, {"wpe.weight", []int{c.ContextLength, d}}}
	for i := 0; i < c.Layers; i++ {
		p := fmt.Sprintf("h.%d.", i)
		s = append(s,
			ParamShape{p + "ln_1.weight", []int{d}},
			ParamShape{p + "ln_1.bias", []int{d}},
			ParamShape{p + "attn.c_attn.weight", []int{d, 3 * d}},
			ParamShape{p + "attn.c_attn.bias", []int{3 * d}},
			ParamShape{p + "attn.c_proj.weight", []int{d, d}},
			ParamShape{p + "attn.c_proj.bias", []int{d}},
			ParamShape{p + "ln_2.weight", []int{d}},
			ParamShape{p + "ln_2.bias", []int{d}},
			ParamShape{p + "mlp.c_fc.weight", []int{d, 4 * d}},
			ParamShape{p + "mlp.c_fc.bias", []int{4 * d}},
			ParamShape{p + "mlp.c_proj.weight", []int{4 * d, d}},
			ParamShape{p + "mlp.c_proj.bias", []int{d}},
		)
	}
	return append(s, ParamShape{"ln_f.weight", []int{d}}, ParamShape{"ln_f.bias", []int{d}})
}
