package controllers

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
)

// Concurrency bounds parallel reconciles per controller.
type Concurrency struct {
	Runs, Datasets int
}

// Setup registers the field indexes and the three controllers with mgr. The manager binary and the envtest suite
// both call it, so tests exercise the same wiring.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options, c Concurrency) error {
	if c.Runs < 1 {
		c.Runs = 1
	}
	if c.Datasets < 1 {
		c.Datasets = 1
	}
	if err := SetupIndexes(ctx, mgr); err != nil {
		return fmt.Errorf("register field indexes: %w", err)
	}
	rec := mgr.GetEventRecorder("preftune-operator")
	var store *progressStore
	if opts.Progress.BindAddress != "" {
		store = newProgressStore(opts.Progress.Interval)
		srv := &progressServer{opts: opts.Progress, runs: mgr.GetClient(), store: store,
			auth: &progressAuthenticator{reviewer: mgr.GetClient(), pods: mgr.GetClient(), podsDirect: mgr.GetAPIReader()}}
		if err := mgr.Add(srv); err != nil {
			return fmt.Errorf("add the progress endpoint: %w", err)
		}
	}
	if err := (&DatasetReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: rec, Options: opts}).SetupWithManager(mgr, c.Datasets); err != nil {
		return fmt.Errorf("set up the PreferenceDataset controller: %w", err)
	}
	sft := NewSFTRunReconciler(mgr.GetClient(), rec, opts)
	sft.progress, sft.APIReader = store, mgr.GetAPIReader()
	if err := sft.SetupWithManager(mgr, c.Runs); err != nil {
		return fmt.Errorf("set up the SFTRun controller: %w", err)
	}
	dpo := NewDPORunReconciler(mgr.GetClient(), rec, opts)
	dpo.progress, dpo.APIReader = store, mgr.GetAPIReader()
	if err := dpo.SetupWithManager(mgr, c.Runs); err != nil {
		return fmt.Errorf("set up the DPORun controller: %w", err)
	}
	return nil
}
