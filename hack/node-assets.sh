#!/usr/bin/env bash
# Build and install what a one-node Kubernetes needs besides envtest's
# kube-apiserver, etcd and kubectl (hack/envtest-assets.sh), and print the
# directory holding the built binaries:
#
#   NODE_ASSETS="$(hack/node-assets.sh)"
#
# Built from Go modules, pinned, cached under ~/.cache/ideapool/node/:
#   kubelet, kube-proxy, kube-controller-manager, kube-scheduler (the same
#   k8s.io/kubernetes release as envtest's kube-apiserver), CoreDNS, crictl,
#   and `pause`, the sandbox program of the registry.k8s.io/pause image.
# From Debian's packages (apt-get, installed when missing; the versions are
# written to DIR/debian-packages.txt): containerd, runc,
# containernetworking-plugins (bridge, host-local, portmap, loopback),
# iptables and conntrack for kube-proxy.
#
# A cold build takes about 10 minutes on 2 cores; afterwards this is instant.
# hack/cluster.sh uses it; see the README's "Try it on a real node".
set -euo pipefail

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The Kubernetes pin, build_k8s and the helpers of hack/lib.sh.
# shellcheck source=hack/envtest-assets.sh
source "$HACK_DIR/envtest-assets.sh"

# --- pinned versions --------------------------------------------------------
# CoreDNS: the release Kubernetes 1.37's kubeadm deploys.
COREDNS_VERSION=v1.15.0
# crictl: cri-tools follows the Kubernetes minor.
CRICTL_VERSION=v1.37.0
# The sandbox image's tag that kubelet 1.37 and containerd are told to use.
PAUSE_TAG=3.10
# Debian packages; their versions are the distribution's (bookworm:
# containerd 1.6.20, runc 1.1.5, containernetworking-plugins 1.1.1).
DEBIAN_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack)
# Bump to force a rebuild when the recipe below changes.
NODE_RECIPE=1

NODE_DIR="$IDEAPOOL_CACHE/node/${K8S_VERSION#v}"
NODE_BINS=(kubelet kube-proxy kube-controller-manager kube-scheduler coredns crictl pause)
NODE_STAMP="k8s=$K8S_VERSION coredns=$COREDNS_VERSION crictl=$CRICTL_VERSION pause=$PAUSE_TAG recipe=$NODE_RECIPE"

node_component_ok() { [[ -x "$NODE_DIR/$1" && -f "$NODE_DIR/.stamp-$1" && "$(<"$NODE_DIR/.stamp-$1")" == "$2" ]]; }
node_component_done() { printf '%s\n' "$2" >"$NODE_DIR/.stamp-$1"; }

# debian_binaries: what the packages must provide, by path.
debian_binaries() {
  printf '%s\n' /usr/bin/containerd /usr/bin/ctr /usr/sbin/runc \
    /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/portmap /usr/lib/cni/loopback \
    /usr/sbin/iptables /usr/sbin/conntrack
}

debian_ok() {
  local f
  for f in $(debian_binaries); do [[ -x $f ]] || return 1; done
}

install_debian() {
  debian_ok && return 0
  local logfile="$BUILD_ROOT/apt-node.log"
  new_log "$logfile"
  log "installing Debian's ${DEBIAN_PACKAGES[*]} (log: $logfile)"
  apt_install_no_start "$logfile" "${DEBIAN_PACKAGES[@]}" ||
    die "apt-get install ${DEBIAN_PACKAGES[*]} failed; see $logfile"
  local f
  for f in $(debian_binaries); do
    [[ -x $f ]] || die "$f is missing after installing ${DEBIAN_PACKAGES[*]}"
  done
}

# record_debian: the versions of the packages in use, for the cluster's
# summary and bug reports; rewritten only when they change.
record_debian() {
  local want
  want=$(dpkg-query -W -f '${Package} ${Version}\n' "${DEBIAN_PACKAGES[@]}")
  if [[ ! -f $NODE_DIR/debian-packages.txt || "$(<"$NODE_DIR/debian-packages.txt")" != "$want" ]]; then
    printf '%s\n' "$want" >"$NODE_DIR/debian-packages.txt"
  fi
}

# build_pause: the sandbox program. registry.k8s.io/pause is a C program that
# sleeps until SIGINT or SIGTERM and reaps orphaned children (it is PID 1 of
# pods that share their process namespace); this is the same in Go, static.
build_pause() {
  local dir="$BUILD_ROOT/pause-$PAUSE_TAG" logfile="$BUILD_ROOT/pause-$PAUSE_TAG.log"
  new_log "$logfile"
  new_build_module "$dir" pause
  cat >"$dir/main.go" <<'EOF'
// Command pause holds a pod's namespaces open, like registry.k8s.io/pause:
// it waits for SIGINT or SIGTERM and reaps the zombies it inherits.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
EOF
  (
    go_env
    cd "$dir"
    run_logged "$logfile" go build -trimpath -ldflags "-s -w" -o "$NODE_DIR/pause" .
  )
}

verify_node() {
  local out
  for b in kubelet kube-proxy kube-controller-manager kube-scheduler; do
    out=$("$NODE_DIR/$b" --version)
    [[ "$out" == "Kubernetes $K8S_VERSION" ]] || die "$b --version printed '$out', want 'Kubernetes $K8S_VERSION'"
  done
  out=$("$NODE_DIR/coredns" -version | head -n1)
  [[ "$out" == "CoreDNS-${COREDNS_VERSION#v}" ]] || die "coredns -version printed '$out'"
  out=$("$NODE_DIR/crictl" --version)
  [[ "$out" == "crictl version ${CRICTL_VERSION}" || "$out" == "crictl version ${CRICTL_VERSION#v}" ]] || die "crictl --version printed '$out'"
}

install_node() {
  # Re-check under the lock: another process may have finished meanwhile.
  if stamp_ok "$NODE_DIR" "$NODE_STAMP" "${NODE_BINS[@]}" && debian_ok; then return 0; fi
  mkdir -p "$NODE_DIR" "$BUILD_ROOT"
  rm -f "$NODE_DIR/VERSION"
  install_debian

  local k8s_bins=() ks="$K8S_VERSION/$NODE_RECIPE" b
  for b in kubelet kube-proxy kube-controller-manager kube-scheduler; do
    node_component_ok "$b" "$ks" || k8s_bins+=("$b")
  done
  if ((${#k8s_bins[@]})); then
    build_k8s "$NODE_DIR" "${k8s_bins[@]}"
    for b in "${k8s_bins[@]}"; do node_component_done "$b" "$ks"; done
  fi
  # (Plain if-blocks, not `a || b`: bash ignores `set -e` inside functions
  # called from a || / && list, which would hide a failed build.)
  if ! node_component_ok coredns "$COREDNS_VERSION/$NODE_RECIPE"; then
    log "building coredns $COREDNS_VERSION (~2 min cold; log: $BUILD_ROOT/coredns-$COREDNS_VERSION.log)"
    new_log "$BUILD_ROOT/coredns-$COREDNS_VERSION.log"
    go_install_pinned "$NODE_DIR" "$BUILD_ROOT/coredns-$COREDNS_VERSION.log" \
      "github.com/coredns/coredns@$COREDNS_VERSION" \
      -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=module-$COREDNS_VERSION"
    node_component_done coredns "$COREDNS_VERSION/$NODE_RECIPE"
  fi
  if ! node_component_ok crictl "$CRICTL_VERSION/$NODE_RECIPE"; then
    log "building crictl $CRICTL_VERSION (~1.5 min cold; log: $BUILD_ROOT/crictl-$CRICTL_VERSION.log)"
    new_log "$BUILD_ROOT/crictl-$CRICTL_VERSION.log"
    go_install_pinned "$NODE_DIR" "$BUILD_ROOT/crictl-$CRICTL_VERSION.log" \
      "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" \
      -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
    node_component_done crictl "$CRICTL_VERSION/$NODE_RECIPE"
  fi
  if ! node_component_ok pause "$PAUSE_TAG/$NODE_RECIPE"; then
    build_pause
    node_component_done pause "$PAUSE_TAG/$NODE_RECIPE"
  fi

  verify_node
  write_stamp "$NODE_DIR" "$NODE_STAMP"
}

node_main() {
  if [[ $# -gt 0 ]]; then
    case $1 in
      -h | --help) print_header "${BASH_SOURCE[0]}"; exit 0 ;;
      *) die "usage: $0   (no arguments; prints the directory of the node's binaries)" ;;
    esac
  fi
  if ! stamp_ok "$NODE_DIR" "$NODE_STAMP" "${NODE_BINS[@]}" || ! debian_ok; then
    with_lock "node-${K8S_VERSION}" install_node
  fi
  record_debian
  printf '%s\n' "$NODE_DIR"
}

node_main "$@"
