#!/usr/bin/env bash
# Build the control-plane binaries controller-runtime's envtest needs
# (kube-apiserver, etcd, kubectl) from Go modules, and print the directory to
# use as KUBEBUILDER_ASSETS:
#
#   export KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)"
#
# Why not setup-envtest: it downloads release tarballs, and this machine
# reaches only the Go module proxy, Debian and npm. So we compile instead.
# A cold build takes ~10 minutes on 2 cores; afterwards this is instant.
set -euo pipefail

# --- pinned versions --------------------------------------------------------
# kube-apiserver/kubectl: the API version controller-runtime v0.25.x targets.
K8S_VERSION=v1.37.2
# etcd: latest 3.6 patch on the module proxy (go list -m -versions
# go.etcd.io/etcd/server/v3). Kubernetes 1.37 is tested against etcd 3.6.
ETCD_VERSION=v3.6.16
# Bump to force a rebuild when the recipe below changes (flags, layout...).
RECIPE=1

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$HACK_DIR/lib.sh"

ASSETS_DIR="$IDEAPOOL_CACHE/k8s/${K8S_VERSION#v}-etcd${ETCD_VERSION#v}"
BUILD_ROOT="$IDEAPOOL_CACHE/build"
K8S_MINOR=$(cut -d. -f2 <<<"$K8S_VERSION")
STAMP="k8s=$K8S_VERSION etcd=$ETCD_VERSION recipe=$RECIPE"

# A per-binary stamp lets a half-finished run (say etcd built, apiserver
# interrupted) resume without redoing the finished part.
component_ok() { [[ -x "$ASSETS_DIR/$1" && -f "$ASSETS_DIR/.stamp-$1" && "$(<"$ASSETS_DIR/.stamp-$1")" == "$2" ]]; }
component_done() { printf '%s\n' "$2" >"$ASSETS_DIR/.stamp-$1"; }

# k8s_ldflags: what Kubernetes' own hack/lib/version.sh stamps, for both
# version packages, so `--version` and /version report the real release.
k8s_ldflags() {
  local pkg flags="-s -w"
  local build_date
  build_date=$(date -u ${SOURCE_DATE_EPOCH:+--date=@$SOURCE_DATE_EPOCH} +%Y-%m-%dT%H:%M:%SZ)
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date -X $pkg.gitCommit="
  done
  printf '%s' "$flags"
}

# kubectl_compatible PATH: true when PATH is a kubectl within the supported
# +-1 minor version skew of $K8S_VERSION.
kubectl_compatible() {
  local out minor
  out=$("$1" version --client 2>/dev/null | sed -n 's/^Client Version: v1\.\([0-9]*\)\..*/\1/p') || return 1
  minor=${out:-0}
  ((minor >= K8S_MINOR - 1 && minor <= K8S_MINOR + 1))
}

# build_k8s OUTDIR BIN...: commands of k8s.io/kubernetes/cmd (kube-apiserver
# and kubectl here; kubelet and the rest for hack/node-assets.sh) into OUTDIR. `go install k8s.io/kubernetes/...@v` is refused because
# its go.mod replaces the staging modules (k8s.io/api, client-go, ...) with
# ./staging/src paths; we require it from a throwaway module and replace each
# staging module with its published v0.<minor>.<patch> release instead.
build_k8s() {
  local out=$1
  shift
  # One throwaway module per set of binaries, so that envtest's and the
  # node's builds can run at the same time; they share Go's build cache.
  local name="kubernetes-$K8S_VERSION-$(printf '%s\n' "$@" | sort | cksum | cut -d' ' -f1)"
  local dir="$BUILD_ROOT/$name" gomod mod staging_ver="v0${K8S_VERSION#v1}"
  local logfile="$BUILD_ROOT/$name.log" pkgs=() bin
  for bin in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$bin"); done
  log "building $* $K8S_VERSION from k8s.io/kubernetes (~8 min cold; log: $logfile)"
  new_log "$logfile"
  new_build_module "$dir" kubernetes
  (
    go_env
    cd "$dir"
    gomod=$(go_mod_file "k8s.io/kubernetes@$K8S_VERSION" GoMod)
    [[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
    local edits=(-require="k8s.io/kubernetes@$K8S_VERSION")
    # Only modules kubernetes actually requires: a couple of replaced staging
    # modules (sample-controller, ...) are not published for every release.
    for mod in $(local_replaces "$gomod"); do
      if required_at "$gomod" "$mod"; then edits+=(-replace="$mod=$mod@$staging_ver"); fi
    done
    go mod edit "${edits[@]}"
    # -mod=mod: let the build fill in go.sum for the throwaway module.
    run_logged "$logfile" go build -mod=mod -p "$IDEAPOOL_BUILD_JOBS" -trimpath \
      -ldflags "$(k8s_ldflags)" -o "$dir/bin/" "${pkgs[@]}"
  )
  for bin in "$@"; do mv -f "$dir/bin/$bin" "$out/$bin"; done
}

# build_etcd: the etcd server binary. Its main package lives in the root
# module go.etcd.io/etcd/v3, whose 3.6 releases are not all on the proxy and
# which replaces its sibling modules with ../ paths anyway; the real entry
# point is the library function etcdmain.Main, so a two-line main suffices.
build_etcd() {
  local dir="$BUILD_ROOT/etcd-$ETCD_VERSION" gomod mod logfile="$BUILD_ROOT/etcd-$ETCD_VERSION.log"
  log "building etcd $ETCD_VERSION from go.etcd.io/etcd/server/v3 (~2 min cold; log: $logfile)"
  new_log "$logfile"
  new_build_module "$dir" etcd
  cat >"$dir/main.go" <<'EOF'
// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (
    go_env
    cd "$dir"
    gomod=$(go_mod_file "go.etcd.io/etcd/server/v3@$ETCD_VERSION" GoMod)
    [[ -f "$gomod" ]] || die "could not download go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    local edits=(-require="go.etcd.io/etcd/server/v3@$ETCD_VERSION")
    # Pin the sibling modules (api, client/v3, pkg, ...) to the same release,
    # as etcd's own build does through its ../ replaces.
    # (Skip the FORBIDDEN_DEPENDENCY guards: they are not requirements.)
    for mod in $(local_replaces "$gomod"); do
      if required_at "$gomod" "$mod"; then edits+=(-replace="$mod=$mod@$ETCD_VERSION"); fi
    done
    go mod edit "${edits[@]}"
    run_logged "$logfile" go build -mod=mod -p "$IDEAPOOL_BUILD_JOBS" -trimpath \
      -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$ETCD_VERSION" \
      -o "$dir/etcd" .
  )
  mv -f "$dir/etcd" "$ASSETS_DIR/etcd"
}

# verify: the binaries must run and report the pinned versions.
verify() {
  local out
  out=$("$ASSETS_DIR/kube-apiserver" --version)
  [[ "$out" == "Kubernetes $K8S_VERSION" ]] || die "kube-apiserver --version printed '$out', want 'Kubernetes $K8S_VERSION'"
  out=$("$ASSETS_DIR/etcd" --version | head -n1)
  [[ "$out" == "etcd Version: ${ETCD_VERSION#v}" ]] || die "etcd --version printed '$out'"
  kubectl_compatible "$ASSETS_DIR/kubectl" || die "kubectl in $ASSETS_DIR is not within one minor of $K8S_VERSION"
}

install_all() {
  # Re-check under the lock: another process may have finished meanwhile.
  stamp_ok "$ASSETS_DIR" "$STAMP" kube-apiserver etcd kubectl && return 0
  mkdir -p "$ASSETS_DIR" "$BUILD_ROOT"
  rm -f "$ASSETS_DIR/VERSION"

  local k8s_bins=() ks="$K8S_VERSION/$RECIPE"
  component_ok kube-apiserver "$ks" || k8s_bins+=(kube-apiserver)
  # kubectl: reuse the system one when its version is within the supported
  # skew (saves ~5 minutes of compiling); otherwise build it alongside
  # kube-apiserver, which shares most of the compile work.
  if ! component_ok kubectl "$ks" && ! component_ok kubectl "system/$RECIPE"; then
    if [[ -x /usr/bin/kubectl ]] && kubectl_compatible /usr/bin/kubectl; then
      ln -sfn /usr/bin/kubectl "$ASSETS_DIR/kubectl"
      component_done kubectl "system/$RECIPE"
      log "kubectl: using /usr/bin/kubectl ($(/usr/bin/kubectl version --client 2>/dev/null | head -n1))"
    else
      rm -f "$ASSETS_DIR/kubectl"
      k8s_bins+=(kubectl)
    fi
  fi
  if ((${#k8s_bins[@]})); then
    build_k8s "$ASSETS_DIR" "${k8s_bins[@]}"
    for b in "${k8s_bins[@]}"; do component_done "$b" "$ks"; done
  fi

  # (Plain if-blocks, not `a || b`: bash ignores `set -e` inside functions
  # called from a || / && list, which would hide a failed build.)
  if ! component_ok etcd "$ETCD_VERSION/$RECIPE"; then
    build_etcd
    component_done etcd "$ETCD_VERSION/$RECIPE"
  fi

  verify
  write_stamp "$ASSETS_DIR" "$STAMP"
}

main() {
  if [[ $# -gt 0 ]]; then
    case $1 in
      -h | --help) print_header "$0"; exit 0 ;;
      *) die "usage: $0   (no arguments; prints the KUBEBUILDER_ASSETS directory)" ;;
    esac
  fi
  if ! stamp_ok "$ASSETS_DIR" "$STAMP" kube-apiserver etcd kubectl; then
    with_lock "k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}" install_all
  fi
  printf '%s\n' "$ASSETS_DIR"
}

# hack/node-assets.sh sources this file for its pins and build_k8s.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
