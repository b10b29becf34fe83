package main

import (
	"flag"

	"github.com/preftune/preftune/trainer/contract"
)

func init() {
	register("sft", "supervised fine-tuning: --config run.json, or --data --out --steps ... for local use", runSFT)
}

func runSFT(args []string) int {
	f := newRunFlags(contract.KindSFT)
	arch := contract.Architecture{Tokenizer: "byte"}
	f.fs.IntVar(&arch.Layers, "layers", 2, "transformer blocks (new model)")
	f.fs.IntVar(&arch.DModel, "d-model", 64, "model width (new model)")
	f.fs.IntVar(&arch.Heads, "heads", 4, "attention heads (new model)")
	f.fs.IntVar(&arch.ContextLength, "context", 128, "context length in tokens (new model)")
	f.fs.StringVar(&f.rc.Model.From, "from", "", "start from this model or checkpoint directory instead of a new model")
	f.finish = func() {
		if f.rc.Model.From == "" {
			f.rc.Model.Architecture = &arch
			return
		}
		// A model directory's config.json sets its shape and context (max_position_embeddings / n_positions).
		f.fs.Visit(func(fl *flag.Flag) {
			switch fl.Name {
			case "layers", "d-model", "heads", "context":
				f.newModelFlags = append(f.newModelFlags, "--"+fl.Name)
			}
		})
	}
	return f.run(args)
}
