// Package keysource keeps ideapool's keyset where it lives and advances it
// on schedule: a file for the standalone server (File). A Kubernetes Secret
// source is planned; Parse recognises its spec already.
package keysource

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of key source, as named in a spec.
const (
	KindFile       = "file"
	KindKubernetes = "kubernetes"
)

// ErrUnsupported means the spec names a source this build cannot use.
var ErrUnsupported = errors.New("key source not supported in this build")

// Parse splits a key source spec: "file:PATH" or "kubernetes:NAMESPACE/NAME".
// A Kubernetes spec is recognised but returns an error wrapping
// ErrUnsupported.
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
		return kind, location, fmt.Errorf("key source %q: %w (use file:PATH)", spec, ErrUnsupported)
	}
	return "", "", fmt.Errorf("key source %q: unknown kind %q, want file or kubernetes", spec, kind)
}
