#!/usr/bin/env bash
# Install a pinned developer tool (if missing) and print its absolute path:
#
#   hack/tools.sh golangci-lint    # built from the Go module proxy
#   hack/tools.sh controller-gen   # built from the Go module proxy
#   hack/tools.sh promtool         # Debian's prometheus package; source build as fallback
#                                  # (IDEAPOOL_PROMTOOL_FROM=go: always the source build)
#
# In a Makefile:  GOLANGCI_LINT := $(shell hack/tools.sh golangci-lint)
# Only the path goes to stdout; progress and errors go to stderr.
# (setup-envtest is deliberately absent: it downloads release tarballs. Use
# hack/envtest-assets.sh, which compiles kube-apiserver and etcd instead.)
set -euo pipefail

# --- pinned versions --------------------------------------------------------
GOLANGCI_LINT_VERSION=v2.15.0
CONTROLLER_GEN_VERSION=v0.22.0
# promtool fallback: Prometheus v3.16.0 is published as Go module v0.316.0.
# Only used when Debian's package (promtool 2.42) cannot be installed.
PROMETHEUS_MODULE_VERSION=v0.316.0
# Service-discovery plugins left out of that build: the pseudo-version of
# github.com/hashicorp/nomad/api that Prometheus pins is not on the module
# proxy. (Only `promtool check config` on a nomad_sd_configs file notices.)
PROMTOOL_SKIP_SD="nomad"

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$HACK_DIR/lib.sh"

TOOLS_DIR="$IDEAPOOL_CACHE/tools"
BUILD_ROOT="$IDEAPOOL_CACHE/build"

usage() {
  print_header "$0"
  exit "${1:-2}"
}

# go_tool NAME VERSION PKG STAMP [go build flags...]: `go install PKG@VERSION`
# into $TOOLS_DIR/NAME/VERSION unless binary + stamp are already there.
go_tool() {
  local name=$1 version=$2 pkg=$3 stamp=$4
  shift 4
  local dir="$TOOLS_DIR/$name/$version"
  if ! stamp_ok "$dir" "$stamp" "$name"; then
    with_lock "$name-$version" go_tool_build "$name" "$version" "$pkg" "$stamp" "$@"
  fi
  printf '%s\n' "$dir/$name"
}

go_tool_build() {
  local name=$1 version=$2 pkg=$3 stamp=$4
  shift 4
  local dir="$TOOLS_DIR/$name/$version" logfile="$BUILD_ROOT/$name-$version.log"
  stamp_ok "$dir" "$stamp" "$name" && return 0 # built by whoever held the lock
  log "building $name $version from $pkg (log: $logfile)"
  rm -f "$dir/VERSION"
  new_log "$logfile"
  go_install_pinned "$dir" "$logfile" "$pkg@$version" "$@"
  write_stamp "$dir" "$stamp"
}

golangci_lint() {
  # golangci-lint refuses to lint code targeting a newer Go than the one it
  # was built with, so the Go minor version is part of the stamp: moving the
  # toolchain to go1.27 rebuilds it automatically.
  local go_minor
  go_minor=$(go env GOVERSION | grep -oE '^go[0-9]+\.[0-9]+')
  go_tool golangci-lint "$GOLANGCI_LINT_VERSION" \
    github.com/golangci/golangci-lint/v2/cmd/golangci-lint \
    "golangci-lint $GOLANGCI_LINT_VERSION $go_minor" \
    -ldflags "-s -w"
}

controller_gen() {
  # controller-gen reads its --version from the module build info, which
  # `go install pkg@version` records, so no -X flags are needed.
  go_tool controller-gen "$CONTROLLER_GEN_VERSION" \
    sigs.k8s.io/controller-tools/cmd/controller-gen \
    "controller-gen $CONTROLLER_GEN_VERSION" \
    -ldflags "-s -w"
}

# --- promtool ---------------------------------------------------------------

# apt_install_prometheus: install Debian's prometheus package for its
# promtool, without letting the package start a Prometheus server (which
# would sit on :9090 and collide with anything the tests run there).
apt_install_prometheus() {
  local rc=0 logfile="$BUILD_ROOT/apt-prometheus.log"
  new_log "$logfile"
  apt_install_no_start "$logfile" prometheus || rc=$?
  stop_started_prometheus
  if ((rc != 0)); then
    log "apt-get install prometheus failed (exit $rc); see $logfile"
    return 1
  fi
}

# stop_started_prometheus: belt and braces in case a service was started
# anyway (e.g. a systemd host ignoring policy-rc.d): disable the unit, then
# end the one process, found by id, that listens on :9090 and is the
# prometheus binary the package installed.
stop_started_prometheus() {
  local pid
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    maybe_sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
  command -v ss >/dev/null || return 0
  for pid in $(ss -Hltnp 'sport = :9090' 2>/dev/null | grep -oE 'pid=[0-9]+' | cut -d= -f2 | sort -u); do
    if [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == /usr/bin/prometheus ]]; then
      log "stopping the prometheus server (pid $pid) the package started"
      maybe_sudo kill "$pid" || true
    fi
  done
}

# build_promtool: fallback when apt is unavailable. The Prometheus module has
# no replace directives, so plain `go install` works; version info is stamped
# the way Prometheus' own build (promu) does.
build_promtool() {
  local minor patch rest prom_version src tags=remove_all_sd f tag sd
  rest=${PROMETHEUS_MODULE_VERSION#v0.}         # 316.0
  minor=$((${rest%%.*} - 300)) patch=${rest#*.} # 16, 0
  prom_version="3.$minor.$patch"
  # Prometheus selects its SD plugins with build tags (plugins/plugin_*.go:
  # remove_all_sd drops them all, enable_<name>_sd adds one back). Enable
  # every plugin this release has except the ones in PROMTOOL_SKIP_SD.
  src=$(go_mod_file "github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION" Dir)
  [[ -d $src/plugins ]] || die "cannot download github.com/prometheus/prometheus@$PROMETHEUS_MODULE_VERSION"
  for f in "$src"/plugins/plugin_*.go; do
    tag=$(grep -oE 'enable_[a-z0-9]+_sd' "$f" | head -n1) || continue
    sd=${tag#enable_} sd=${sd%_sd}
    if [[ " $PROMTOOL_SKIP_SD " != *" $sd "* ]]; then tags+=",$tag"; fi
  done
  local v=github.com/prometheus/common/version
  go_tool promtool "$PROMETHEUS_MODULE_VERSION" \
    github.com/prometheus/prometheus/cmd/promtool \
    "promtool $prom_version skip-sd=$PROMTOOL_SKIP_SD" \
    -tags "$tags" \
    -ldflags "-s -w -X $v.Version=$prom_version -X $v.Branch=HEAD -X $v.Revision=module-$PROMETHEUS_MODULE_VERSION"
}

promtool() {
  local cached="$TOOLS_DIR/promtool/$PROMETHEUS_MODULE_VERSION"
  # IDEAPOOL_PROMTOOL_FROM=go skips Debian's (older, 2.42) promtool, e.g. for
  # rule files that need Prometheus 3 syntax.
  if [[ ${IDEAPOOL_PROMTOOL_FROM:-apt} == go ]]; then
    build_promtool
    return 0
  fi
  # Prefer the distro binary; a previous fallback build is next best.
  if [[ -x /usr/bin/promtool ]]; then
    printf '%s\n' /usr/bin/promtool
    return 0
  fi
  if [[ -x "$cached/promtool" && -f "$cached/VERSION" ]]; then
    printf '%s\n' "$cached/promtool"
    return 0
  fi
  log "installing promtool from Debian's prometheus package ..."
  if with_lock apt-prometheus apt_install_prometheus && [[ -x /usr/bin/promtool ]]; then
    printf '%s\n' /usr/bin/promtool
    return 0
  fi
  log "falling back to building promtool from the Go module proxy"
  build_promtool
}

main() {
  [[ $# -eq 1 ]] || usage
  case $1 in
    golangci-lint) golangci_lint ;;
    controller-gen) controller_gen ;;
    promtool) promtool ;;
    setup-envtest) die "setup-envtest downloads release binaries, which this machine cannot; use: hack/envtest-assets.sh" ;;
    -h | --help) usage 0 ;;
    *) log "unknown tool: $1"; usage ;;
  esac
}

main "$@"
