// Package controllers turns PreferenceDatasets, SFTRuns and DPORuns into batch Jobs that run the bundled trainer,
// and computes their status from the Jobs and Pods it observes.
package controllers

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Options are the manager-wide settings the controllers need.
type Options struct {
	// TrainerImage runs the trainer (and the dataset validation) unless a run overrides it.
	TrainerImage string
	// GPUResourceName counts GPUs when a run does not name one.
	GPUResourceName string
	// DefaultOutputURI is the base output of runs that do not set spec.output.uri.
	DefaultOutputURI string
	// JobTTL is how long finished Jobs (and their pods) are kept; the custom resources keep their status.
	JobTTL time.Duration
	// ImagePullPolicy of the trainer container ("" leaves Kubernetes' default).
	ImagePullPolicy string
	// Progress configures the endpoint trainers push live progress to; its zero value disables it.
	Progress ProgressOptions
	// TrainerEnv is added to the environment of every trainer container (runs and dataset validation), after the
	// operator's own variables, which it cannot replace: cluster-wide settings such as a proxy, a Hub mirror
	// (HF_ENDPOINT) or a BLAS kernel (OPENBLAS_CORETYPE).
	TrainerEnv []corev1.EnvVar
}

// DefaultGPUResourceName is the extended resource of NVIDIA's device plugin.
const DefaultGPUResourceName = "nvidia.com/gpu"

func (o Options) gpuResourceName(perRun string) string {
	if perRun != "" {
		return perRun
	}
	if o.GPUResourceName != "" {
		return o.GPUResourceName
	}
	return DefaultGPUResourceName
}
