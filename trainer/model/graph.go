package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/preftune/preftune/trainer/nn"
)

// kind of compiled graph.
type kind int

const (
	kindSFT          kind = iota // forward + backward of the mean token NLL
	kindDPO                      // forward + backward of the DPO (+ RPO) loss
	kindLogProbs                 // forward only: masked target log-probs per position
	kindLogits                   // forward only: logits at every position (generation)
	kindBaseLogProbs             // forward only: masked target log-probs of the base model, adapter off
)

func (k kind) String() string {
	return [...]string{"SFT", "DPO", "LogProbs", "Logits", "BaseLogProbs"}[k]
}

type graphKey struct {
	kind kind
	b, t int
}

// graph is one compiled graph and the handles a step needs.
type graph struct {
	key    graphKey
	g      *G.ExprGraph
	vm     G.VM
	tk     *nn.Tokens
	dpo    *nn.DPOSpec
	params []*G.Node // in Params.Names order
	// grads are the gradients of the trainable tensors (Params.TrainableNames at build time), in that order.
	grads     []*G.Node
	trainable []string
	loss      *G.Node
	lp        *G.Node
	logits    *G.Node
	// arena holds the buffers of every op but the outputs (nn.PlanBuffers).
	arena *nn.Arena
}

// graphFor returns the cached graph of (k, b, t), building and compiling it on first use.
func (p *Params) graphFor(k kind, b, t int) (*graph, error) {
	key := graphKey{k, b, t}
	if gr, ok := p.graphs[key]; ok {
		return gr, nil
	}
	if b < 1 || t < 1 || t > p.ContextLength {
		return nil, fmt.Errorf("model: batch of %d rows × %d positions (want rows >= 1 and 1 <= positions <= context length %d)",
			b, t, p.ContextLength)
	}
	gr, err := p.build(key)
	if err != nil {
		return nil, fmt.Errorf("model: building the %v graph for %d×%d: %w", k, b, t, err)
	}
	p.graphs[key] = gr
	return gr, nil
}

func (p *Params) build(key graphKey) (gr *graph, err error) {
	// An op given the nil result of a failed one may panic inside gorgonia; the first error is what counts.
	defer func() {
		if r := recover(); r != nil {
			gr, err = nil, fmt.Errorf("%v", r)
		}
	}()
	gr = &graph{key: key, g: G.NewGraph(), tk: nn.NewTokens(key.b, key.t)}
	w := map[string]*G.Node{}
	for _, n := range p.Names {
		v := p.Values[n]
		node := G.NewTensor(gr.g, p.Dtype, v.Dims(), G.WithShape(v.Shape()...), G.WithName(n), G.WithValue(v))
		gr.params = append(gr.params, node)
		w[n] = node
	}
	must := func(n *G.Node, e error) *G.Node {
		if err == nil && e != nil {
			err = e
		}
		return n
	}
	wrt := gr.params
	gr.trainable = p.Names
	conv := p.Family == GPT2 // Conv1D weights [in, out]
	lin := func(_ string, x, w, b *G.Node) (*G.Node, error) {
		if conv {
			return nn.Linear(x, w, b)
		}
		return nn.LinearT(x, w, b)
	}
	if p.lora != nil && key.kind != kindBaseLogProbs {
		wrt, lin = p.lora.graph(gr.g, p.Dtype, key.kind == kindSFT || key.kind == kindDPO, conv, lin)
		gr.trainable = p.lora.names
	}
	h, head, err := p.fam.forward(p.Config, w, gr.tk, lin)
	if err != nil {
		return nil, err
	}
	switch {
	case key.kind == kindLogits:
		gr.logits = must(nn.MatMul(h, head, false, true))
	case p.fam.fusedHead():
		gr.lp = must(nn.HeadLogProbs(h, head, gr.tk))
	default:
		gr.logits = must(nn.MatMul(h, head, false, true))
		gr.lp = must(nn.TargetLogProbs(gr.logits, gr.tk))
	}
	switch key.kind {
	case kindSFT:
		gr.loss = must(nn.NLLMean(gr.lp, gr.tk))
	case kindDPO:
		gr.dpo = &nn.DPOSpec{}
		gr.loss = must(nn.DPOLoss(gr.lp, gr.tk, gr.dpo))
	}
	if err != nil {
		return nil, err
	}
	if gr.loss != nil {
		if gr.grads, err = nn.Grad(gr.loss, wrt...); err != nil {
			return nil, err
		}
	}
	// The machine runs only what the outputs need: with an adapter, the gradients nn.Grad's ops build for the
	// frozen weights (dW of every linear layer) feed nothing and are left out, so they neither run nor hold
	// buffers. The outputs keep their own buffers; every other op's comes from the graph's arena and is reused
	// once its last reader has run (nn.PlanBuffers).
	var roots G.Nodes
	for _, n := range []*G.Node{gr.loss, gr.lp, gr.logits} {
		if n != nil {
			roots = append(roots, n)
		}
	}
	roots = append(roots, gr.grads...)
	sub := gr.g.ExactSubgraphRoots(roots...)
	gr.arena = nn.PlanBuffers(sub.AllNodes(), roots...)
	gr.vm = G.NewTapeMachine(sub)
	return gr, nil
}

// run executes the graph once on the tokens already set.
func (gr *graph) run() error {
	gr.vm.Reset()
	if err := gr.vm.RunAll(); err != nil {
		return fmt.Errorf("model: %v graph %d×%d: %w", gr.key.kind, gr.key.b, gr.key.t, err)
	}
	return nil
}

// accumulate adds the graph's gradients into p.Grads (the adapter's gradients with an adapter).
func (p *Params) accumulate(gr *graph) error {
	grads := p.Gradients
	if p.lora != nil {
		grads = func() map[string]*tensor.Dense { return p.lora.gradients(p.Dtype) }
	}
	for i, n := range gr.trainable {
		v, ok := gr.grads[i].Value().(*tensor.Dense)
		if !ok || v.Dtype() != p.Dtype {
			return fmt.Errorf("model: gradient of %s is %T", n, gr.grads[i].Value())
		}
		switch dst := grads()[n].Data().(type) {
		case []float32:
			addTo(dst, v.Data().([]float32))
		case []float64:
			addTo(dst, v.Data().([]float64))
		}
	}
	return nil
}

func addTo[T float32 | float64](dst, src []T) {
	for i, v := range src {
		dst[i] += v
	}
}

// lpValues returns the masked target log-probs of the last run as float64, one per position.
func (gr *graph) lpValues() []float64 {
	v := gr.lp.Value().(*tensor.Dense)
	out := make([]float64, v.Shape().TotalSize())
	switch d := v.Data().(type) {
	case []float32:
		for i, x := range d {
			out[i] = float64(x)
		}
	case []float64:
		copy(out, d)
	}
	return out
}

func scalarOf(n *G.Node) float64 {
	switch v := n.Value().(type) {
	case *G.F32:
		return float64(*v)
	case *G.F64:
		return float64(*v)
	}
	panic(fmt.Sprintf("model: loss value is %T", n.Value()))
}

// ReleaseGraphs drops every compiled graph and its buffers (the next step rebuilds what it needs), e.g. once
// the reference log-probs are computed and their forward-only graphs are no longer needed.
func (p *Params) ReleaseGraphs() {
	for k, gr := range p.graphs {
		gr.vm.Close()
		delete(p.graphs, k)
	}
}
