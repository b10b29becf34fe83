package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// pvcMountRoot is where PersistentVolumeClaims named by pvc:// URIs are mounted in trainer pods.
const pvcMountRoot = "/mnt/pvc"

// podStorage collects the volumes a trainer pod needs and maps the URIs users write (pvc://claim/path) to the
// URIs the trainer sees (file:///mnt/pvc/claim/path). Other schemes pass through unchanged: the trainer reads them
// itself. A claim used read-write anywhere in the pod is mounted read-write once.
type podStorage struct {
	claims map[string]bool // claim name -> read-only
}

// mapURI returns the URI the trainer sees for uri.
func (s *podStorage) mapURI(uri string, readOnly bool) (string, error) {
	claim, rest, ok := strings.Cut(strings.TrimPrefix(uri, "pvc://"), "/")
	if !strings.HasPrefix(uri, "pvc://") {
		return uri, nil
	}
	if claim == "" {
		return "", fmt.Errorf("uri %q names no claim: want pvc://<claim>/<path>", uri)
	}
	if !ok {
		rest = ""
	}
	if s.claims == nil {
		s.claims = map[string]bool{}
	}
	if ro, seen := s.claims[claim]; seen {
		s.claims[claim] = ro && readOnly
	} else {
		s.claims[claim] = readOnly
	}
	return "file://" + path.Join(pvcMountRoot, claim, rest), nil
}

// unmapURI turns a URI the trainer reported (file:///mnt/pvc/claim/path) back into the user's form.
func unmapURI(uri string) string {
	prefix := "file://" + pvcMountRoot + "/"
	if strings.HasPrefix(uri, prefix) {
		return "pvc://" + strings.TrimPrefix(uri, prefix)
	}
	return uri
}

func (s *podStorage) volumes() ([]corev1.Volume, []corev1.VolumeMount) {
	names := make([]string, 0, len(s.claims))
	for c := range s.claims {
		names = append(names, c)
	}
	sort.Strings(names)
	var vols []corev1.Volume
	var mounts []corev1.VolumeMount
	for _, c := range names {
		h := sha256.Sum256([]byte(c))
		vol := "pvc-" + hex.EncodeToString(h[:])[:10]
		vols = append(vols, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c, ReadOnly: s.claims[c]},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: vol, MountPath: path.Join(pvcMountRoot, c), ReadOnly: s.claims[c]})
	}
	return vols, mounts
}
