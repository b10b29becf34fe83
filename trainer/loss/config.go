package loss

import (
	"fmt"
	"math"
)

// DPO loss types, named as TRL names them.
const (
	LossSigmoid = "sigmoid"
	LossIPO     = "ipo"
	LossHinge   = "hinge"
	LossRobust  = "robust"
)

// DPOConfig selects and parameterises a DPO loss.
type DPOConfig struct {
	// Beta is the KL-penalty strength β (> 0).
	Beta float64
	// LabelSmoothing is ε in [0, 0.5): cDPO when LossType is sigmoid, the noise rate of robust. IPO and
	// hinge have no use for it, so a non-zero value there is rejected rather than ignored.
	LabelSmoothing float64
	// LossType is sigmoid, ipo, hinge or robust; empty means sigmoid (TRL's default).
	LossType string
	// ReferenceFree drops the reference model: its log-probabilities are taken as 0 in the loss and the
	// rewards, so callers may pass zeros or anything else there.
	ReferenceFree bool
}

// Validate reports the first field that makes the configuration unusable.
func (c DPOConfig) Validate() error {
	if math.IsNaN(c.Beta) || math.IsInf(c.Beta, 0) || c.Beta <= 0 {
		return fmt.Errorf("dpo: beta must be a finite number > 0, got %v", c.Beta)
	}
	if math.IsNaN(c.LabelSmoothing) || c.LabelSmoothing < 0 || c.LabelSmoothing >= 0.5 {
		return fmt.Errorf("dpo: labelSmoothing must be in [0, 0.5), got %v", c.LabelSmoothing)
	}
	switch c.lossType() {
	case LossSigmoid, LossRobust:
	case LossIPO, LossHinge:
		if c.LabelSmoothing != 0 {
			return fmt.Errorf("dpo: labelSmoothing %v has no meaning for lossType %q (only sigmoid and robust use it)",
				c.LabelSmoothing, c.LossType)
		}
	default:
		return fmt.Errorf("dpo: lossType %q is not one of sigmoid, ipo, hinge, robust", c.LossType)
	}
	return nil
}

func (c DPOConfig) lossType() string {
	if c.LossType == "" {
		return LossSigmoid
	}
	return c.LossType
}
