// Package keysource keeps ideapool's keyset where it lives and advances it
// on schedule: a file for the standalone server (File), which it rotates
// itself, or a Kubernetes Secret that the operator rotates (Kubernetes),
// which it only reads.
package keysource

import (
	"strings"

	"github.com/ideapool/ideapool/internal/source"
)

// Kinds of key source, as named in a spec.
const (
	KindFile       = source.KindFile
	KindKubernetes = source.KindKubernetes
)

// Parse splits a key source spec: "file:PATH" or "kubernetes:NAMESPACE/NAME"
// (location is then "NAMESPACE/NAME"; see SplitName).
func Parse(spec string) (kind, location string, err error) {
	return source.Parse("key source", spec)
}

// SplitName splits the location of a Kubernetes spec, "NAMESPACE/NAME".
func SplitName(location string) (namespace, name string) {
	namespace, name, _ = strings.Cut(location, "/")
	return namespace, name
}
