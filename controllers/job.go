package controllers

import (
	"path"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/preftune/preftune/api/v1alpha1"
	"github.com/preftune/preftune/trainer/contract"
)

// configMountDir is where the run's configuration ConfigMap is mounted; the file inside is configFileName.
const (
	configMountDir = "/etc/preftune"
	configFileName = "config.json"
	datasetMount   = "/mnt/dataset"
	// nonRootUID is the distroless "nonroot" user the trainer image runs as.
	nonRootUID = 65532
)

// jobParams is everything a trainer Job depends on; buildTrainerJob turns it into a Job without side effects.
type jobParams struct {
	name, namespace string
	labels          map[string]string
	owner           metav1.OwnerReference
	image           string
	pullPolicy      corev1.PullPolicy
	args            []string
	configMapName   string
	storage         podStorage
	// datasetConfigMap mounts a ConfigMap key holding the dataset at datasetMount/<key>.
	datasetConfigMap *v1alpha1.ConfigMapDataSource
	envFrom          []corev1.EnvFromSource
	// extraEnv is the operator's --trainer-env, appended after the trainer's own variables (names those use are
	// dropped from it: the operator's wiring wins).
	extraEnv        []corev1.EnvVar
	backoffLimit    int32
	activeDeadline  *int64
	suspend         bool
	ttl             *int32
	gpus            int32
	gpuResourceName string
	cpu, memory     *resource.Quantity
	scheduling      v1alpha1.SchedulingSpec
	// progress, when set, lets the trainer push reports to the manager.
	progress *progressParams
}

// progressParams give the trainer a report URL, a token for it and the CA to trust.
type progressParams struct {
	url, audience string
	// hasCA: the configuration ConfigMap carries the CA under progressCAKey.
	hasCA bool
}

// Where the trainer finds its progress token and CA.
const (
	progressTokenDir  = "/var/run/secrets/preftune.io/progress"
	progressTokenFile = "token"
	progressCAKey     = "progress-ca.crt"
	// progressTokenSeconds is the token's lifetime; the kubelet renews it at 80%.
	progressTokenSeconds = 3600
)

// buildTrainerJob builds the one-pod Job that runs the trainer. The pod runs with the restricted Pod Security
// profile (non-root, read-only root filesystem, no privilege escalation, no capabilities, RuntimeDefault seccomp)
// and without a service-account token: the trainer talks to no Kubernetes API.
func buildTrainerJob(p jobParams) *batchv1.Job {
	volumes := []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: p.configMapName},
		}}},
		// The root filesystem is read-only; the trainer's scratch space (graph buffers, staging) is here.
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	mounts := []corev1.VolumeMount{
		{Name: "config", MountPath: configMountDir, ReadOnly: true},
		{Name: "tmp", MountPath: "/tmp"},
	}
	if cm := p.datasetConfigMap; cm != nil {
		volumes = append(volumes, corev1.Volume{Name: "dataset", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: cm.Name},
			Items:                []corev1.KeyToPath{{Key: cm.Key, Path: cm.Key}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "dataset", MountPath: datasetMount, ReadOnly: true})
	}
	env := []corev1.EnvVar{{Name: "HOME", Value: "/tmp"}}
	if pr := p.progress; pr != nil {
		// A projected token bound to the pod, for the manager's endpoint only (its audience names the run); the
		// pod still gets no Kubernetes API token.
		volumes = append(volumes, corev1.Volume{Name: "progress-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: pr.audience, ExpirationSeconds: ptr.To[int64](progressTokenSeconds), Path: progressTokenFile,
			}}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "progress-token", MountPath: progressTokenDir, ReadOnly: true})
		env = append(env,
			corev1.EnvVar{Name: contract.ProgressURLEnv, Value: pr.url},
			corev1.EnvVar{Name: contract.ProgressTokenFileEnv, Value: path.Join(progressTokenDir, progressTokenFile)})
		if pr.hasCA {
			env = append(env, corev1.EnvVar{Name: contract.ProgressCAFileEnv, Value: path.Join(configMountDir, progressCAKey)})
		}
	}
	for _, e := range p.extraEnv {
		if !slices.ContainsFunc(env, func(o corev1.EnvVar) bool { return o.Name == e.Name }) {
			env = append(env, e)
		}
	}
	pvcVolumes, pvcMounts := p.storage.volumes()
	volumes = append(volumes, pvcVolumes...)
	mounts = append(mounts, pvcMounts...)

	resources := corev1.ResourceRequirements{}
	setBoth := func(name corev1.ResourceName, q resource.Quantity) {
		if resources.Requests == nil {
			resources.Requests, resources.Limits = corev1.ResourceList{}, corev1.ResourceList{}
		}
		resources.Requests[name], resources.Limits[name] = q, q
	}
	if p.cpu != nil {
		setBoth(corev1.ResourceCPU, *p.cpu)
	}
	if p.memory != nil {
		setBoth(corev1.ResourceMemory, *p.memory)
	}
	tolerations := append([]corev1.Toleration(nil), p.scheduling.Tolerations...)
	if p.gpus > 0 {
		setBoth(corev1.ResourceName(p.gpuResourceName), *resource.NewQuantity(int64(p.gpus), resource.DecimalSI))
		// GPU nodes are commonly tainted with the GPU resource name; a pod that asks for GPUs tolerates it.
		tolerations = append(tolerations, corev1.Toleration{
			Key: p.gpuResourceName, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
		})
	}

	labels := map[string]string{}
	for k, v := range p.labels {
		labels[k] = v
	}
	podLabels := map[string]string{}
	for k, v := range p.labels {
		if k != LabelKueueQueueName {
			podLabels[k] = v
		}
	}

	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.name, Namespace: p.namespace, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{p.owner},
		},
		Spec: batchv1.JobSpec{
			Parallelism:             ptr.To[int32](1),
			Completions:             ptr.To[int32](1),
			BackoffLimit:            ptr.To(p.backoffLimit),
			ActiveDeadlineSeconds:   p.activeDeadline,
			Suspend:                 ptr.To(p.suspend),
			TTLSecondsAfterFinished: p.ttl,
			PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
				{
					// Input that will never work (bad data, bad configuration, changed digest): fail at once.
					Action: batchv1.PodFailurePolicyActionFailJob,
					OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
						ContainerName: ptr.To(TrainerContainerName),
						Operator:      batchv1.PodFailurePolicyOnExitCodesOpIn,
						Values:        []int32{contract.ExitInvalidInput},
					},
				},
				{
					// Preemption, eviction, node drain: not the trainer's fault, so not counted against maxRetries.
					Action: batchv1.PodFailurePolicyActionIgnore,
					OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{
						{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue},
					},
				},
			}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					RestartPolicy:                 corev1.RestartPolicyNever,
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					NodeSelector:                  p.scheduling.NodeSelector,
					Tolerations:                   tolerations,
					Affinity:                      p.scheduling.Affinity,
					PriorityClassName:             p.scheduling.PriorityClassName,
					TerminationGracePeriodSeconds: ptr.To[int64](60),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To[int64](nonRootUID),
						RunAsGroup:     ptr.To[int64](nonRootUID),
						FSGroup:        ptr.To[int64](nonRootUID),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:                     TrainerContainerName,
						Image:                    p.image,
						ImagePullPolicy:          p.pullPolicy,
						Command:                  []string{contract.TrainerPath},
						Args:                     append(append([]string(nil), p.args...), "--config", path.Join(configMountDir, configFileName)),
						EnvFrom:                  p.envFrom,
						Env:                      env,
						Resources:                resources,
						VolumeMounts:             mounts,
						TerminationMessagePath:   contract.TerminationMessagePath,
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							RunAsNonRoot:             ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
					}},
					Volumes: volumes,
				},
			},
		},
	}
}

// buildConfigMap holds one configuration document for a Job. It is immutable: a run's configuration is fixed
// once its Job exists.
func buildConfigMap(name, namespace string, labels map[string]string, owner metav1.OwnerReference, doc []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels, OwnerReferences: []metav1.OwnerReference{owner}},
		Immutable:  ptr.To(true),
		Data:       map[string]string{configFileName: string(doc)},
	}
}

// datasetSourceParams maps a dataset's source into the pod: the URI the trainer reads, the mounts it needs and
// the credentials it gets.
func datasetSourceParams(ds *v1alpha1.PreferenceDataset, st *podStorage) (uri string, cm *v1alpha1.ConfigMapDataSource, envFrom []corev1.EnvFromSource, err error) {
	src := ds.Spec.Source
	switch {
	case src.ConfigMap != nil:
		return "file://" + path.Join(datasetMount, src.ConfigMap.Key), src.ConfigMap, nil, nil
	case src.Volume != nil:
		uri, err = st.mapURI("pvc://"+path.Join(src.Volume.ClaimName, src.Volume.Path), true)
		return uri, nil, nil, err
	default:
		if src.SecretRef != nil {
			envFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: *src.SecretRef}}}
		}
		return src.URI, nil, envFrom, nil
	}
}
