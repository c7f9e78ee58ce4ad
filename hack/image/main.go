// Command image builds container images as OCI archives without a container
// engine or a registry, for `make image` and hack/cluster.sh:
//
//	go run ./hack/image app -binary bin/ideapool -version V -app-image REF -chart charts/ideapool -tag REF -o OUT.tar
//	go run ./hack/image binary -file HOST:IMAGE_PATH -entrypoint PATH -user UID:GID -tag REF -o OUT.tar
//
// `app` is the image of the Dockerfile (same user, entrypoint, command,
// environment, labels, files and base files); image_test.go holds the two
// together. `binary` is a static binary alone (the node's pause and CoreDNS
// images). The archive is an OCI image layout in a tar file, one entry per
// -tag, which `ctr images import` names after the tag. Files and the image
// carry SOURCE_DATE_EPOCH as their time (default 0), so the same inputs give
// the same digests.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: image app|binary [flags]; image KIND -help lists the flags")
	}
	created, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	var (
		fs    = flag.NewFlagSet(args[0], flag.ContinueOnError)
		out   = fs.String("o", "", "the OCI archive to write")
		tags  listFlag
		chart = fs.String("chart", "", "also tag the image as this Helm chart's default image (image.repository:appVersion)")
	)
	fs.Var(&tags, "tag", "an image reference REGISTRY/REPOSITORY:TAG to name the image (repeatable)")
	var img v1.Image
	switch args[0] {
	case "app":
		s := appSpec{Created: created}
		fs.StringVar(&s.Binary, "binary", "bin/ideapool", "the static ideapool binary")
		fs.StringVar(&s.Version, "version", "dev", "the version (the Dockerfile's VERSION build arg)")
		fs.StringVar(&s.AppImage, "app-image", "", "IDEAPOOL_APP_IMAGE, the operator's --app-image default (the Dockerfile's IMAGE build arg)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if s.AppImage == "" {
			return errors.New("-app-image is required")
		}
		if img, err = appImage(s); err != nil {
			return err
		}
	case "binary":
		var files, entrypoint listFlag
		s := binarySpec{Created: created, Files: map[string]string{}}
		fs.Var(&files, "file", "HOST_PATH:IMAGE_PATH of a binary to put in the image (repeatable)")
		fs.Var(&entrypoint, "entrypoint", "the entrypoint, one argument per flag")
		fs.StringVar(&s.User, "user", "65532:65532", "UID:GID the image runs as")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		for _, f := range files {
			src, dst, ok := strings.Cut(f, ":")
			if !ok || !strings.HasPrefix(dst, "/") {
				return fmt.Errorf("-file %q: want HOST_PATH:/IMAGE_PATH", f)
			}
			s.Files[dst] = src
		}
		s.Entrypoint = entrypoint
		if img, err = binaryImage(s); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown image kind %q: want app or binary", args[0])
	}
	if *out == "" {
		return errors.New("-o is required")
	}
	refs := []string(tags)
	if *chart != "" {
		ref, err := chartImage(*chart)
		if err != nil {
			return err
		}
		refs = append(refs, ref)
	}
	if err := writeArchive(*out, img, dedupe(refs), created); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "image: %s %s (%s)\n", *out, d, strings.Join(dedupe(refs), " "))
	return nil
}

func dedupe(refs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range refs {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// chartImage is the image a plain `helm install` of the chart in dir runs:
// image.repository, tagged image.tag or else the chart's appVersion (as
// the chart's ideapool.image helper does).
func chartImage(dir string) (string, error) {
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	var values struct {
		Image struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
		} `json:"image"`
	}
	for f, v := range map[string]any{"Chart.yaml": &chart, "values.yaml": &values} {
		b, err := os.ReadFile(filepath.Join(dir, f)) //nolint:gosec // G703: dir is the tool's own -chart flag
		if err != nil {
			return "", fmt.Errorf("chart: %w", err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			return "", fmt.Errorf("chart: %s: %w", f, err)
		}
	}
	tag := values.Image.Tag
	if tag == "" {
		tag = chart.AppVersion
	}
	if values.Image.Repository == "" || tag == "" {
		return "", fmt.Errorf("chart %s: no image.repository or appVersion", dir)
	}
	return values.Image.Repository + ":" + tag, nil
}

// sourceDateEpoch is the time reproducible builds agree on
// (https://reproducible-builds.org/specs/source-date-epoch/), 0 if unset.
func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", v, err)
	}
	return time.Unix(n, 0).UTC(), nil
}
