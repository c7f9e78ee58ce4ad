// Package keysource keeps ideapool's keyset where it lives and advances it
// on schedule: a file for the standalone server (File), which it rotates
// itself, or a Kubernetes Secret that the operator rotates (Kubernetes),
// which it only reads.
package keysource

import (
	"fmt"
	"strings"
)

// Kinds of key source, as named in a spec.
const (
	KindFile       = "file"
	KindKubernetes = "kubernetes"
)

// Parse splits a key source spec: "file:PATH" or "kubernetes:NAMESPACE/NAME"
// (location is then "NAMESPACE/NAME"; see SplitName).
func Parse(spec string) (kind, location string, err error) {
	kind, location, ok := strings.Cut(spec, ":")
	if !ok {
		return "", "", fmt.Errorf("key source %q: want file:PATH or kubernetes:NAMESPACE/NAME", spec)
	}
	switch kind {
	case KindFile:
		if location == "" {
			return "", "", fmt.Errorf("key source %q: empty path", spec)
		}
		return kind, location, nil
	case KindKubernetes:
		ns, name, ok := strings.Cut(location, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return "", "", fmt.Errorf("key source %q: want kubernetes:NAMESPACE/NAME", spec)
		}
		return kind, location, nil
	}
	return "", "", fmt.Errorf("key source %q: unknown kind %q, want file or kubernetes", spec, kind)
}

// SplitName splits the location of a Kubernetes spec, "NAMESPACE/NAME".
func SplitName(location string) (namespace, name string) {
	namespace, name, _ = strings.Cut(location, "/")
	return namespace, name
}
