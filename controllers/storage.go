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

// TrainerURI is the URI the trainer sees for a URI a user wrote: pvc://claim/path becomes
// file:///mnt/pvc/claim/path (where the claim is mounted); other schemes pass through.
func TrainerURI(uri string) (string, error) {
	claim, rest, err := splitPVC(uri)
	if err != nil || claim == "" {
		return uri, err
	}
	return "file://" + path.Join(pvcMountRoot, claim, rest), nil
}

// UserURI turns a URI the trainer reported (file:///mnt/pvc/claim/path) back into the user's form.
func UserURI(uri string) string { return unmapURI(uri) }

// splitPVC returns the claim and path of a pvc:// URI ("" for other schemes).
func splitPVC(uri string) (claim, rest string, err error) {
	if !strings.HasPrefix(uri, "pvc://") {
		return "", "", nil
	}
	claim, rest, _ = strings.Cut(strings.TrimPrefix(uri, "pvc://"), "/")
	if claim == "" {
		return "", "", fmt.Errorf("uri %q names no claim: want pvc://<claim>/<path>", uri)
	}
	return claim, rest, nil
}

// mapURI returns the URI the trainer sees for uri and mounts its claim.
func (s *podStorage) mapURI(uri string, readOnly bool) (string, error) {
	claim, _, err := splitPVC(uri)
	if err != nil || claim == "" {
		return uri, err
	}
	if s.claims == nil {
		s.claims = map[string]bool{}
	}
	if ro, seen := s.claims[claim]; seen {
		s.claims[claim] = ro && readOnly
	} else {
		s.claims[claim] = readOnly
	}
	return TrainerURI(uri)
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
