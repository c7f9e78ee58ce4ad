package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the Dockerfile's final stage holds, restated here; image_test.go
// parses the Dockerfile and fails when the two disagree.
const (
	binDir     = "/usr/local/bin"
	binName    = "ideapool"
	pluginName = "kubectl-ideapool"
	// appUser is the Dockerfile's USER: distroless's nonroot user and group.
	appUser = "65532:65532"
	// sourceURL is the org.opencontainers.image.source label.
	sourceURL = "https://github.com/ideapool/ideapool"
)

// appLabels are the Dockerfile's LABELs for a build of version.
func appLabels(version string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "ideapool",
		"org.opencontainers.image.description": "Identity and idea-pool service, its Kubernetes operator and kubectl plugin",
		"org.opencontainers.image.source":      sourceURL,
		"org.opencontainers.image.version":     version,
	}
}

// What gcr.io/distroless/static-debian12:nonroot, the Dockerfile's base,
// provides and the binary may rely on: its users and groups, CA
// certificates, time zones, a world-writable /tmp, the nonroot home and its
// config (PATH, SSL_CERT_FILE, working directory). That image cannot be
// pulled here, so its equivalent is built from this machine's Debian files.
const (
	caBundle    = "/etc/ssl/certs/ca-certificates.crt"
	zoneinfoDir = "/usr/share/zoneinfo"
	nonrootHome = "/home/nonroot"
	basePath    = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	passwd      = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n"
)

// entry is one file, directory, link or hard link of a layer.
type entry struct {
	name     string // absolute path in the image
	mode     int64
	uid, gid int
	data     []byte
	typ      byte   // tar.TypeReg, TypeDir, TypeSymlink, TypeLink
	link     string // target of a symlink or hard link
}

func dir(name string, mode int64, uid int) entry {
	return entry{name: name, mode: mode, uid: uid, gid: uid, typ: tar.TypeDir}
}

func file(name string, mode int64, data []byte) entry {
	return entry{name: name, mode: mode, data: data, typ: tar.TypeReg}
}

// layer is a gzip-compressed tar of entries with every time set to mtime
// and parents listed before children, so the same files give the same
// digest on every build.
func layer(entries []entry, mtime time.Time) (v1.Layer, error) {
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Typeflag: e.typ,
			Name:     strings.TrimPrefix(e.name, "/"),
			Mode:     e.mode,
			Uid:      e.uid,
			Gid:      e.gid,
			ModTime:  mtime,
			Format:   tar.FormatPAX,
		}
		switch e.typ {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeReg:
			h.Size = int64(len(e.data))
		case tar.TypeSymlink:
			h.Linkname = e.link
		case tar.TypeLink:
			h.Linkname = strings.TrimPrefix(e.link, "/")
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// hostTree copies a directory of this machine (zone info) into entries:
// directories, regular files and symlinks as they are, owned by root. It
// reads through an os.Root, so a symlink cannot lead it outside hostDir.
func hostTree(hostDir string) ([]entry, error) {
	root, err := os.OpenRoot(hostDir)
	if err != nil {
		return nil, fmt.Errorf("copying %s: %w", hostDir, err)
	}
	defer root.Close()
	var out []entry
	err = fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := path.Join(hostDir, rel)
		switch {
		case d.IsDir():
			out = append(out, dir(name, 0o755, 0))
		case d.Type()&fs.ModeSymlink != 0:
			target, err := root.Readlink(rel)
			if err != nil {
				return err
			}
			out = append(out, entry{name: name, mode: 0o777, typ: tar.TypeSymlink, link: target})
		case d.Type().IsRegular():
			data, err := root.ReadFile(rel)
			if err != nil {
				return err
			}
			out = append(out, file(name, 0o644, data))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("copying %s: %w", hostDir, err)
	}
	return out, nil
}

// baseLayer is the distroless static nonroot equivalent, from this
// machine's CA bundle (Debian's ca-certificates, as distroless's) and time
// zones (Debian's tzdata).
func baseLayer(mtime time.Time) (v1.Layer, error) {
	ca, err := os.ReadFile(caBundle)
	if err != nil {
		return nil, fmt.Errorf("CA certificates (Debian's ca-certificates package): %w", err)
	}
	zones, err := hostTree(zoneinfoDir)
	if err != nil {
		return nil, fmt.Errorf("time zones (Debian's tzdata package): %w", err)
	}
	entries := []entry{
		dir("/etc", 0o755, 0),
		dir("/etc/ssl", 0o755, 0),
		dir("/etc/ssl/certs", 0o755, 0),
		file(caBundle, 0o644, ca),
		file("/etc/passwd", 0o644, []byte(passwd)),
		file("/etc/group", 0o644, []byte(group)),
		file("/etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")),
		dir("/home", 0o755, 0),
		dir(nonrootHome, 0o700, 65532),
		dir("/root", 0o700, 0),
		dir("/tmp", 0o1777, 0),
		dir("/usr", 0o755, 0),
		dir("/usr/share", 0o755, 0),
		dir("/var", 0o755, 0),
	}
	return layer(append(entries, zones...), mtime)
}

// appSpec is one build of the ideapool image: the Dockerfile's build args.
type appSpec struct {
	Binary   string    // the static ideapool binary (make build)
	Version  string    // ARG VERSION
	AppImage string    // ARG IMAGE: IDEAPOOL_APP_IMAGE, the operator's --app-image default
	Created  time.Time // creation time and every file's mtime
}

// appImage is the image the Dockerfile builds, without docker.
func appImage(s appSpec) (v1.Image, error) {
	bin, err := os.ReadFile(s.Binary)
	if err != nil {
		return nil, fmt.Errorf("the ideapool binary: %w", err)
	}
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		return nil, fmt.Errorf("%s is not an ELF executable", s.Binary)
	}
	base, err := baseLayer(s.Created)
	if err != nil {
		return nil, err
	}
	app, err := layer([]entry{
		dir("/usr/local", 0o755, 0),
		dir(binDir, 0o755, 0),
		file(path.Join(binDir, binName), 0o755, bin),
		// The Dockerfile copies the binary twice; one hard link is the same
		// file at half the size.
		{name: path.Join(binDir, pluginName), mode: 0o755, typ: tar.TypeLink, link: path.Join(binDir, binName)},
	}, s.Created)
	if err != nil {
		return nil, err
	}
	return build([]v1.Layer{base, app}, v1.Config{
		User:       appUser,
		WorkingDir: nonrootHome,
		Entrypoint: []string{path.Join(binDir, binName)},
		Cmd:        []string{"serve"},
		Env: []string{
			"PATH=" + basePath,
			"SSL_CERT_FILE=" + caBundle,
			"IDEAPOOL_APP_IMAGE=" + s.AppImage,
		},
		Labels: appLabels(s.Version),
	}, s.Created)
}

// binarySpec is an image of static binaries and nothing else, for the
// node's own images (pause, CoreDNS).
type binarySpec struct {
	Files      map[string]string // image path -> host path
	Entrypoint []string
	User       string
	Created    time.Time
}

func binaryImage(s binarySpec) (v1.Image, error) {
	dirs := map[string]bool{}
	var entries []entry
	for dst, src := range s.Files {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		entries = append(entries, file(dst, 0o755, data))
		for d := path.Dir(dst); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			entries = append(entries, dir(d, 0o755, 0))
		}
	}
	l, err := layer(entries, s.Created)
	if err != nil {
		return nil, err
	}
	return build([]v1.Layer{l}, v1.Config{User: s.User, Entrypoint: s.Entrypoint}, s.Created)
}

func build(layers []v1.Layer, cfg v1.Config, created time.Time) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, fmt.Errorf("image layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = "amd64"
	cf.OS = "linux"
	cf.Config = cfg
	cf.Created = v1.Time{Time: created}
	cf.History = nil
	return mutate.ConfigFile(img, cf)
}

// containerd's annotation for an image's full name; `ctr images import`
// names an imported image after it.
const containerdImageName = "io.containerd.image.name"

// writeArchive writes img as an OCI image layout in a tar file, once per
// reference, each named for `ctr images import` (io.containerd.image.name)
// and by tag (org.opencontainers.image.ref.name). Written next to out and
// renamed, so a reader never sees half an archive.
func writeArchive(out string, img v1.Image, refs []string, mtime time.Time) error {
	if len(refs) == 0 {
		return errors.New("no image reference to tag the image with")
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dirPath := filepath.Join(tmp, "layout")
	p, err := layout.Write(dirPath, empty.Index)
	if err != nil {
		return fmt.Errorf("OCI layout: %w", err)
	}
	for _, ref := range refs {
		tag := ref[strings.LastIndex(ref, ":")+1:]
		if !strings.Contains(ref, "/") || strings.Contains(tag, "/") {
			return fmt.Errorf("image reference %q: want REGISTRY/REPOSITORY:TAG", ref)
		}
		err := p.AppendImage(img,
			layout.WithAnnotations(map[string]string{containerdImageName: ref, "org.opencontainers.image.ref.name": tag}),
			layout.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
		if err != nil {
			return fmt.Errorf("OCI layout: %w", err)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(out), ".image-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := tarDir(f, dirPath, mtime); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	//nolint:gosec // G302: an image archive holds nothing secret
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), out) //nolint:gosec // G703: out is the tool's own -o flag
}

// tarDir writes the files under root to w, sorted, with fixed times and
// owners.
func tarDir(w io.Writer, root string, mtime time.Time) error {
	tw := tar.NewWriter(w)
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error { //nolint:gosec // G703: root is our own temporary directory
		if err != nil || p == root {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, p := range names {
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: mtime, Format: tar.FormatPAX}
		if info.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		h.Typeflag, h.Size = tar.TypeReg, info.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if err := copyFile(tw, p); err != nil {
			return err
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
