package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/preftune/preftune/trainer/contract"
)

// loraFlags are the adapter flags of sft and dpo (contract.AdapterConfig, output.mergedModel).
type loraFlags struct {
	rank    int
	alpha   float64
	dropout float64
	targets string
	merged  bool
}

func addLoRAFlags(fs *flag.FlagSet) *loraFlags {
	l := &loraFlags{}
	fs.IntVar(&l.rank, "lora-rank", 0, "train a LoRA adapter of this rank, 1-1024, on the frozen model (absent or 0: train every weight)")
	fs.Float64Var(&l.alpha, "lora-alpha", 0, "LoRA alpha: the update is scaled by alpha/rank (0: 2 x rank)")
	fs.Float64Var(&l.dropout, "lora-dropout", 0, "dropout on the adapter's input while training, in [0, 1)")
	fs.StringVar(&l.targets, "lora-targets", "", "comma-separated module names (q_proj,v_proj,... or c_attn,c_proj,c_fc; default: all attention and MLP projections)")
	fs.BoolVar(&l.merged, "merged-model", true, "with --lora-rank, also write model/ with the adapter merged in (false: adapter/ only)")
	return l
}

// apply sets rc's adapter and output.mergedModel from the flags that were given. --lora-rank 0 (or no
// --lora-rank) is full fine-tuning; the other adapter flags need a rank.
func (l *loraFlags) apply(fs *flag.FlagSet, rc *contract.RunConfig) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["merged-model"] {
		m := l.merged
		rc.Output.MergedModel = &m
	}
	if l.rank == 0 {
		var given []string
		for _, name := range []string{"lora-alpha", "lora-dropout", "lora-targets"} {
			if set[name] {
				given = append(given, "--"+name)
			}
		}
		if len(given) > 0 {
			return fmt.Errorf("%s set options of a LoRA adapter, but --lora-rank is absent or 0, which trains every "+
				"weight instead; give --lora-rank 1-1024 for an adapter", strings.Join(given, ", "))
		}
		return nil
	}
	a := &contract.AdapterConfig{Type: contract.AdapterTypeLoRA, Rank: l.rank, Alpha: l.alpha, Dropout: l.dropout}
	for _, t := range strings.Split(l.targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			a.TargetModules = append(a.TargetModules, t)
		}
	}
	rc.Adapter = a
	return nil
}
