package main

import "github.com/preftune/preftune/trainer/contract"

func init() {
	register("dpo", "preference tuning (DPO) from an SFT model: --config run.json, or --data --reference --out ... for local use", runDPO)
}

func runDPO(args []string) int {
	f := newRunFlags(contract.KindDPO)
	ref := &contract.ReferenceConfig{}
	d := &contract.DPOConfig{PrecomputeReferenceLogProbs: true}
	f.fs.StringVar(&ref.ModelURI, "reference", "", "the SFT model directory: the frozen reference and the policy's start")
	f.fs.StringVar(&ref.AdapterURI, "reference-adapter", "", "a LoRA adapter trained on --reference, merged into it first: a directory in "+
		"PEFT's layout or a URI (file://, s3://, gs://, azblob://, or a PEFT adapter repository hf://org/name[@revision])")
	f.fs.Float64Var(&d.Beta, "beta", 0.1, "DPO beta")
	f.fs.StringVar(&d.LossType, "loss-type", "sigmoid", "sigmoid, ipo, hinge or robust")
	f.fs.Float64Var(&d.LabelSmoothing, "label-smoothing", 0, "cDPO / robust label smoothing")
	f.fs.Float64Var(&d.RPOAlpha, "rpo-alpha", 0, "weight of the NLL term on chosen responses (RPO)")
	f.finish = func() {
		f.rc.Reference = ref
		f.rc.DPO = d
	}
	return f.run(args)
}
