// Package loss holds the trainer's losses in plain float64 Go: the DPO family (sigmoid/cDPO, IPO, hinge,
// robust), the per-token NLL used by SFT and by RPO, their values, TRL's reward metrics, and the gradients
// of the losses with respect to per-sequence log-probabilities. The model wraps these in a graph op: the
// graph produces log-probabilities, this package turns them into a loss and the upstream gradients.
package loss
