#!/usr/bin/env bash
# Build a pinned Helm (if missing) from the Go module proxy and print its path:
#
#   hack/helm.sh      # Helm 4 (the default major, see HELM_DEFAULT_MAJOR)
#   hack/helm.sh 3    # Helm v3
#   hack/helm.sh 4    # Helm v4
#
# In a Makefile:  HELM := $(shell hack/helm.sh 3)
# Only the path goes to stdout; progress and errors go to stderr.
set -euo pipefail

# --- pinned versions --------------------------------------------------------
HELM3_VERSION=v3.22.0
HELM4_VERSION=v4.3.1
HELM_DEFAULT_MAJOR=4
# Bump to force a rebuild when the recipe below changes.
RECIPE=1

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$HACK_DIR/lib.sh"

BUILD_ROOT="$IDEAPOOL_CACHE/build"

usage() {
  print_header "$0"
  exit "${1:-2}"
}

# helm_ldflags MAJOR VERSION: what Helm's Makefile stamps for a tagged
# release. Without it `helm version` says "v3.22" / "v4.3" (the source
# default) instead of the full pinned version.
helm_ldflags() {
  local major=$1 version=$2 v="helm.sh/helm/v$1/internal/version"
  local flags="-s -w -X $v.version=$version -X $v.gitTreeState=clean"
  if [[ $major == 3 ]]; then
    # Helm 3 also bakes in the Kubernetes version it assumes when no cluster
    # is reachable (helm template/lint: .Capabilities.KubeVersion). Its
    # Makefile derives it from client-go's version (v0.35.x -> 1.35); left
    # unset it would be 1.20, and charts with a kubeVersion constraint fail.
    # (Helm 4 reads it from the binary's build info by itself.)
    local gomod client_go maj min
    gomod=$(go_mod_file "helm.sh/helm/v3@$version" GoMod)
    client_go=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")
    [[ $client_go =~ ^v0\.([0-9]+)\. ]] || die "cannot read k8s.io/client-go version from $gomod"
    maj=1 min=${BASH_REMATCH[1]}
    local p
    for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
      flags+=" -X $p.k8sVersionMajor=$maj -X $p.k8sVersionMinor=$min"
    done
  fi
  printf '%s' "$flags"
}

build_helm() {
  local major=$1 version=$2 dir=$3 stamp=$4 logfile="$BUILD_ROOT/helm-$2.log" out ldflags
  stamp_ok "$dir" "$stamp" helm && return 0 # built by whoever held the lock
  ldflags=$(helm_ldflags "$major" "$version")
  log "building helm $version from helm.sh/helm/v$major/cmd/helm (log: $logfile)"
  new_log "$logfile"
  rm -f "$dir/VERSION"
  # Helm's go.mod has no replace directives, so `go install pkg@version`
  # works and no throwaway module is needed.
  go_install_pinned "$dir" "$logfile" "helm.sh/helm/v$major/cmd/helm@$version" \
    -ldflags "$ldflags"
  out=$("$dir/helm" version --short)
  [[ $out == "$version" ]] || die "built helm reports '$out', want '$version'"
  write_stamp "$dir" "$stamp"
}

main() {
  [[ $# -le 1 ]] || usage
  local major=${1:-$HELM_DEFAULT_MAJOR} version
  case $major in
    3 | v3) major=3 version=$HELM3_VERSION ;;
    4 | v4) major=4 version=$HELM4_VERSION ;;
    -h | --help) usage 0 ;;
    *) usage ;;
  esac
  local dir="$IDEAPOOL_CACHE/helm/$version" stamp="helm $version recipe=$RECIPE"
  if ! stamp_ok "$dir" "$stamp" helm; then
    with_lock "helm-$version" build_helm "$major" "$version" "$dir" "$stamp"
  fi
  printf '%s\n' "$dir/helm"
}

main "$@"
