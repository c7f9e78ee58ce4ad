#!/usr/bin/env bash
# Fetch the CustomResourceDefinitions of the third-party APIs the operator
# uses when they exist (cert-manager's Certificate, Gateway API's HTTPRoute)
# from their Go modules, pinned, and print the directory holding them:
#
#   export IDEAPOOL_TEST_CRDS="$(hack/test-crds.sh)"
#   # $IDEAPOOL_TEST_CRDS/cert-manager/*.yaml, $IDEAPOOL_TEST_CRDS/gateway-api/*.yaml
#
# The operator tests install each set into envtest only after checking how
# the operator behaves without it. Both projects publish their CRDs in their
# Go modules (cert-manager: deploy/crds, Gateway API: config/crd/standard),
# and the Go module proxy is the only network this project may use, so no
# release manifest is downloaded. Only the path goes to stdout.
set -euo pipefail

# --- pinned versions --------------------------------------------------------
# cert-manager: latest release on the module proxy
# (go list -m -versions github.com/cert-manager/cert-manager).
CERT_MANAGER_VERSION=v1.21.2
# Gateway API: latest release whose go.mod the project's Go (1.26) accepts;
# v1.7.0 needs Go 1.27. The standard channel, as most clusters install it.
GATEWAY_API_VERSION=v1.6.3
# Bump to force a fresh copy when the recipe below changes.
RECIPE=1

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$HACK_DIR/lib.sh"

STAMP="cert-manager=$CERT_MANAGER_VERSION gateway-api=$GATEWAY_API_VERSION recipe=$RECIPE"
DIR="$IDEAPOOL_CACHE/crds/cert-manager-${CERT_MANAGER_VERSION#v}-gateway-api-${GATEWAY_API_VERSION#v}"

# copy_crds MODULE@VERSION SUBDIR DEST FILE...: copy FILEs of SUBDIR of the
# module's source into DEST, checking each is a plain CRD (not a template).
copy_crds() {
  local module=$1 subdir=$2 dest=$3 src f
  shift 3
  src=$(go_mod_file "$module" Dir)
  [[ -d $src/$subdir ]] || die "cannot download $module (no $subdir in '$src')"
  mkdir -p "$dest"
  for f in "$@"; do
    [[ -f $src/$subdir/$f ]] || die "$module has no $subdir/$f"
    grep -q '^kind: CustomResourceDefinition$' "$src/$subdir/$f" || die "$module $subdir/$f is not a CustomResourceDefinition"
    if grep -q '{{' "$src/$subdir/$f"; then die "$module $subdir/$f is a template, not plain YAML"; fi
    install -m 0644 "$src/$subdir/$f" "$dest/$f"
  done
}

fetch() {
  stamp_ok "$DIR" "$STAMP" && return 0 # fetched by whoever held the lock
  log "fetching the CRDs of cert-manager $CERT_MANAGER_VERSION and Gateway API $GATEWAY_API_VERSION from the Go module proxy"
  rm -rf "$DIR"
  copy_crds "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION" deploy/crds "$DIR/cert-manager" \
    cert-manager.io_certificates.yaml cert-manager.io_issuers.yaml cert-manager.io_clusterissuers.yaml
  copy_crds "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" config/crd/standard "$DIR/gateway-api" \
    gateway.networking.k8s.io_gatewayclasses.yaml gateway.networking.k8s.io_gateways.yaml \
    gateway.networking.k8s.io_httproutes.yaml
  write_stamp "$DIR" "$STAMP"
}

main() {
  case ${1:-} in
    -h | --help) print_header "$0"; exit 0 ;;
    "") ;;
    *) print_header "$0"; exit 2 ;;
  esac
  if ! stamp_ok "$DIR" "$STAMP"; then
    with_lock test-crds fetch
  fi
  printf '%s\n' "$DIR"
}

main "$@"
