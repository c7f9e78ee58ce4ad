// Package source parses the specs that name where a document lives:
// "file:PATH" or "kubernetes:NAMESPACE/NAME" (the --keys and --config flags).
package source

import (
	"fmt"
	"strings"

	"github.com/ideapool/ideapool/internal/contract"
)

// The kinds of source.
const (
	KindFile       = contract.SourceFile
	KindKubernetes = contract.SourceKubernetes
)

// Parse splits spec into its kind and location ("PATH", or
// "NAMESPACE/NAME"); what names the flag's subject in errors ("key source").
func Parse(what, spec string) (kind, location string, err error) {
	kind, location, ok := strings.Cut(spec, ":")
	if !ok {
		return "", "", fmt.Errorf("%s %q: want file:PATH or kubernetes:NAMESPACE/NAME", what, spec)
	}
	switch kind {
	case KindFile:
		if location == "" {
			return "", "", fmt.Errorf("%s %q: empty path", what, spec)
		}
		return kind, location, nil
	case KindKubernetes:
		ns, name, ok := strings.Cut(location, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return "", "", fmt.Errorf("%s %q: want kubernetes:NAMESPACE/NAME", what, spec)
		}
		return kind, location, nil
	}
	return "", "", fmt.Errorf("%s %q: unknown kind %q, want file or kubernetes", what, spec, kind)
}
