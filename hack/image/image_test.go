package main

import (
	"archive/tar"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// dockerfile is what the final stage of a Dockerfile says, with ARGs
// substituted.
type dockerfile struct {
	base       string
	user       string
	entrypoint []string
	cmd        []string
	env        map[string]string
	labels     map[string]string
	copies     map[string]string // destination path -> source path of COPY --from
	workdir    string            // "" keeps the base's
	unknown    []string          // instructions hack/image does not reproduce
}

// parseDockerfile reads the instructions this project's Dockerfile uses
// (ARG, FROM, COPY, ENV, LABEL, USER, ENTRYPOINT, CMD, in the exec and
// key=value forms), with build args applied as `docker build --build-arg`
// would. It fails on anything else in the final stage, so that a new
// instruction is never silently ignored.
func parseDockerfile(t *testing.T, text string, buildArgs map[string]string) dockerfile {
	t.Helper()
	var lines []string
	cur := ""
	for _, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		lines = append(lines, cur+trimmed)
		cur = ""
	}
	global := map[string]string{}
	var d dockerfile
	var args map[string]string
	stage := -1
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "ARG":
			name, def, _ := strings.Cut(rest, "=")
			val, ok := buildArgs[name]
			if !ok {
				val = def
				if g, ok := global[name]; ok && def == "" {
					val = g
				}
			}
			if stage < 0 {
				global[name] = val
			} else {
				args[name] = expand(t, val, args)
			}
		case "FROM":
			stage++
			args = map[string]string{}
			d = dockerfile{env: map[string]string{}, labels: map[string]string{}, copies: map[string]string{}}
			d.base = strings.Fields(expand(t, rest, global))[0]
		case "COPY":
			f := strings.Fields(rest)
			dst := f[len(f)-1]
			if len(f) < 3 || !strings.HasPrefix(f[0], "--from=") || !strings.HasSuffix(dst, "/") {
				// Fine in the build stage; the final stage must not have it.
				d.unknown = append(d.unknown, l)
				continue
			}
			for _, src := range f[1 : len(f)-1] {
				d.copies[dst+filepath.Base(src)] = src
			}
		case "ENV":
			for k, v := range pairs(t, expand(t, rest, mergeArgs(args, d.env))) {
				d.env[k] = v
			}
		case "LABEL":
			for k, v := range pairs(t, expand(t, rest, mergeArgs(args, d.env))) {
				d.labels[k] = v
			}
		case "USER":
			d.user = rest
		case "ENTRYPOINT":
			d.entrypoint = execForm(t, rest)
		case "CMD":
			d.cmd = execForm(t, rest)
		case "WORKDIR":
			d.workdir = rest
		default:
			// RUN in the build stage: nothing of it reaches the image but
			// what COPY --from takes.
			d.unknown = append(d.unknown, l)
		}
	}
	return d
}

func mergeArgs(a, b map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

func expand(t *testing.T, s string, vars map[string]string) string {
	t.Helper()
	return os.Expand(s, func(name string) string {
		v, ok := vars[name]
		if !ok {
			t.Fatalf("Dockerfile: ${%s} is not defined in this stage", name)
		}
		return v
	})
}

// pairs splits `k1=v1 k2="v 2"` as ENV and LABEL do.
func pairs(t *testing.T, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			t.Fatalf("Dockerfile: %q: want KEY=VALUE pairs", s)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				t.Fatalf("Dockerfile: unterminated quote in %q", rest)
			}
			v, s = rest[1:end+1], rest[end+2:]
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		out[k] = v
	}
	return out
}

func execForm(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("Dockerfile: %q: want the exec (JSON) form: %v", s, err)
	}
	return out
}

// distrolessNonroot is what the Dockerfile's base provides that the image
// must provide too.
const distrolessNonroot = "gcr.io/distroless/static-debian12:nonroot"

// imageFS is the flattened file system of an image: path -> header and
// content.
type imageFile struct {
	hdr  *tar.Header
	data []byte
}

func flatten(t *testing.T, img v1.Image) map[string]imageFile {
	t.Helper()
	files := map[string]imageFile{}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files["/"+strings.TrimSuffix(h.Name, "/")] = imageFile{hdr: h, data: data}
	}
	return files
}

// readArchive untars an OCI archive and returns each image by its
// io.containerd.image.name.
func readArchive(t *testing.T, archive string) map[string]v1.Image {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("%s is not an OCI layout: %v", archive, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.Image{}
	for _, d := range m.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		out[d.Annotations[containerdImageName]] = img
	}
	return out
}

// TestImageMatchesDockerfile builds the app image the way `make image` does
// and checks it has what the Dockerfile's image has, read from the
// Dockerfile itself: base files, user, entrypoint, command, environment,
// labels and the copied binaries.
func TestImageMatchesDockerfile(t *testing.T) {
	text, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	const version, appImageRef = "1.2.3-test", "registry.example/ideapool:1.2.3-test"
	df := parseDockerfile(t, string(text), map[string]string{"VERSION": version, "IMAGE": appImageRef})

	dir := t.TempDir()
	bin := filepath.Join(dir, "ideapool")
	binData := append([]byte("\x7fELF"), bytes.Repeat([]byte("not really a binary "), 100)...)
	if err := os.WriteFile(bin, binData, 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := appImage(appSpec{Binary: bin, Version: version, AppImage: appImageRef, Created: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "image.tar")
	chartRef, err := chartImage("../../charts/ideapool")
	if err != nil {
		t.Fatal(err)
	}
	if err := writeArchive(archive, img, []string{appImageRef, chartRef}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	images := readArchive(t, archive)
	if len(images) != 2 || images[appImageRef] == nil || images[chartRef] == nil {
		t.Fatalf("archive names %v, want %s and %s", keys(images), appImageRef, chartRef)
	}
	cf, err := images[chartRef].ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config

	if len(df.unknown) > 0 {
		t.Fatalf("the Dockerfile's final stage has %q, which hack/image does not reproduce: teach it (and this test)", df.unknown)
	}
	if df.base != distrolessNonroot {
		t.Fatalf("the Dockerfile's base is %s; hack/image builds the equivalent of %s: teach it the new base", df.base, distrolessNonroot)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	if cfg.User != df.user {
		t.Errorf("user %q, the Dockerfile's USER is %q", cfg.User, df.user)
	}
	if !slices.Equal(cfg.Entrypoint, df.entrypoint) {
		t.Errorf("entrypoint %q, the Dockerfile's ENTRYPOINT is %q", cfg.Entrypoint, df.entrypoint)
	}
	if !slices.Equal(cfg.Cmd, df.cmd) {
		t.Errorf("cmd %q, the Dockerfile's CMD is %q", cfg.Cmd, df.cmd)
	}
	env := map[string]string{}
	for _, e := range cfg.Env {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	// The Dockerfile's ENV on top of what the base sets.
	want := map[string]string{"PATH": basePath, "SSL_CERT_FILE": caBundle}
	for k, v := range df.env {
		want[k] = v
	}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("env %v, want %v (the base's and the Dockerfile's ENV)", env, want)
	}
	if env["IDEAPOOL_APP_IMAGE"] != appImageRef {
		t.Errorf("env %v lacks IDEAPOOL_APP_IMAGE=%s", env, appImageRef)
	}
	if !reflect.DeepEqual(cfg.Labels, df.labels) {
		t.Errorf("labels %v, the Dockerfile's LABELs are %v", cfg.Labels, df.labels)
	}
	if wd := cmp.Or(df.workdir, nonrootHome); cfg.WorkingDir != wd {
		t.Errorf("working dir %q, want %s (the Dockerfile's WORKDIR, else distroless nonroot's)", cfg.WorkingDir, wd)
	}

	files := flatten(t, images[chartRef])
	if len(df.copies) == 0 {
		t.Fatal("the Dockerfile copies no binary into the image")
	}
	for dst, src := range df.copies {
		f, ok := files[dst]
		if !ok {
			t.Errorf("the Dockerfile copies %s to %s; the image has no %s", src, dst, dst)
			continue
		}
		if f.hdr.Typeflag == tar.TypeLink {
			f = files["/"+f.hdr.Linkname]
		}
		if !bytes.Equal(f.data, binData) || f.hdr.Mode&0o111 != 0o111 || f.hdr.Uid != 0 {
			t.Errorf("%s: not the binary, executable by all and owned by root (mode %o, uid %d, %d bytes)", dst, f.hdr.Mode, f.hdr.Uid, len(f.data))
		}
	}
	if len(files) == 0 || files[df.entrypoint[0]].hdr == nil {
		t.Errorf("the entrypoint %s is not in the image", df.entrypoint[0])
	}

	// What distroless/static:nonroot provides.
	uid, gid, _ := strings.Cut(df.user, ":")
	if !strings.Contains(string(files["/etc/passwd"].data), "nonroot:x:"+uid+":"+gid+":") {
		t.Errorf("/etc/passwd has no user %s:%s:\n%s", uid, gid, files["/etc/passwd"].data)
	}
	if !strings.Contains(string(files["/etc/group"].data), "nonroot:x:"+gid+":") {
		t.Errorf("/etc/group has no group %s", gid)
	}
	if f := files[caBundle]; !bytes.Contains(f.data, []byte("BEGIN CERTIFICATE")) {
		t.Errorf("%s holds no CA certificate", caBundle)
	}
	if f := files["/tmp"]; f.hdr == nil || f.hdr.Typeflag != tar.TypeDir || f.hdr.Mode&0o7777 != 0o1777 {
		t.Errorf("/tmp is not a world-writable sticky directory: %+v", f.hdr)
	}
	if f := files[nonrootHome]; f.hdr == nil || f.hdr.Uid != 65532 {
		t.Errorf("%s is not owned by nonroot: %+v", nonrootHome, f.hdr)
	}
	if f := files[zoneinfoDir+"/UTC"]; f.hdr == nil {
		t.Errorf("no time zone data under %s", zoneinfoDir)
	}
}

// TestImageIsReproducible: the same inputs give the same digest, so that
// importing an unchanged image changes nothing on the node.
func TestImageIsReproducible(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "ideapool")
	if err := os.WriteFile(bin, []byte("\x7fELF binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	var digests []v1.Hash
	for range 2 {
		img, err := appImage(appSpec{Binary: bin, Version: "v", AppImage: "example.com/i:v", Created: time.Unix(1700000000, 0)})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds of the same inputs: %s and %s", digests[0], digests[1])
	}
}

func TestAppImageRefusesWhatIsNotABinary(t *testing.T) {
	f := filepath.Join(t.TempDir(), "ideapool")
	if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := appImage(appSpec{Binary: f, AppImage: "example.com/i:v"}); err == nil {
		t.Error("a shell script was accepted as the ideapool binary")
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
