# shellcheck shell=bash
# Shared helpers for the hack/*.sh tool installers. Source it; don't run it.
#
# Conventions every installer follows:
#   * stdout carries exactly one thing: the path of what was installed, so a
#     Makefile can do $(shell hack/tools.sh golangci-lint). Everything else
#     (progress, errors) goes to stderr.
#   * A tool is "installed" when its binary exists AND a stamp file next to it
#     holds the expected recipe string. The stamp is written last, after the
#     binary was moved into place, so an interrupted build never looks done.
#   * Builds run from throwaway Go modules under $IDEAPOOL_CACHE/build, never
#     inside the repository's module: the repo's go.mod/go.sum stay untouched.
#   * Nothing is downloaded except Go modules (module proxy) and Debian
#     packages: there is no network for release binaries.

IDEAPOOL_CACHE="${IDEAPOOL_CACHE:-$HOME/.cache/ideapool}"
# The machine has 2 cores; more parallel compile jobs only add memory pressure.
IDEAPOOL_BUILD_JOBS="${IDEAPOOL_BUILD_JOBS:-2}"

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# stamp_ok DIR EXPECTED BIN... : true when every BIN is an executable file in
# DIR and DIR/VERSION holds exactly EXPECTED.
stamp_ok() {
  local dir=$1 want=$2 bin
  shift 2
  [[ -f "$dir/VERSION" ]] || return 1
  [[ "$(<"$dir/VERSION")" == "$want" ]] || return 1
  for bin in "$@"; do
    [[ -x "$dir/$bin" ]] || return 1
  done
}

write_stamp() { printf '%s\n' "$2" >"$1/VERSION"; }

# with_lock NAME CMD... : run CMD while holding an exclusive lock, so parallel
# `make -j` targets asking for the same tool build it once; the others wait and
# then see the finished stamp.
with_lock() {
  local name=$1
  shift
  mkdir -p "$IDEAPOOL_CACHE/locks"
  (
    exec 9>"$IDEAPOOL_CACHE/locks/$name.lock"
    flock 9
    "$@"
  )
}

# new_log FILE: start an empty build log (creating its directory).
new_log() {
  mkdir -p "$(dirname "$1")"
  : >"$1"
}

# run_logged LOGFILE CMD... : run CMD with its (chatty) output in LOGFILE; on
# failure show the log's tail so the error is visible without digging.
run_logged() {
  local logfile=$1
  shift
  mkdir -p "$(dirname "$logfile")"
  if ! "$@" >>"$logfile" 2>&1; then
    log "error: command failed: $*"
    log "--- last 40 lines of $logfile ---"
    tail -n 40 "$logfile" >&2
    return 1
  fi
}

# go_env: settings shared by every Go build here. GOWORK=off so a go.work in
# a parent directory can never leak in; GOFLAGS cleared so a developer's
# -mod=vendor (or similar) can't change how third-party code is built;
# CGO_ENABLED=0 for static binaries that need no C toolchain at run time.
go_env() {
  export GOWORK=off GOFLAGS='' CGO_ENABLED=0
}

# go_mod_file MODULE@VERSION FIELD: download a module into the module cache
# and print one field of `go mod download -json`: GoMod (path of its go.mod)
# or Dir (its extracted source).
go_mod_file() {
  (
    go_env
    mkdir -p "$IDEAPOOL_CACHE" && cd "$IDEAPOOL_CACHE" || exit
    go mod download -json "$1"
  ) | sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}\$/\1/p"
}

# go_install_pinned BINDIR LOGFILE PKG@VERSION [go build flags...] :
# `go install` into BINDIR. Works for modules whose go.mod has no replace
# directives (go install pkg@version refuses those).
go_install_pinned() {
  local bindir=$1 logfile=$2 target=$3
  shift 3
  mkdir -p "$bindir"
  (
    go_env
    # Run outside the repo. pkg@version ignores the current module anyway;
    # this makes it plain that nothing here can touch the repo's go.mod.
    mkdir -p "$IDEAPOOL_CACHE" && cd "$IDEAPOOL_CACHE" || exit
    export GOBIN="$bindir"
    run_logged "$logfile" go install -p "$IDEAPOOL_BUILD_JOBS" -trimpath "$@" "$target"
  )
}

# print_header FILE: a script's leading comment block, as its --help text.
print_header() {
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$1" >&2
}

# --- throwaway build modules (hack/envtest-assets.sh, hack/node-assets.sh) ---

# new_build_module DIR NAME: an empty throwaway main module, outside the repo,
# so nothing here can touch the repository's go.mod/go.sum.
new_build_module() {
  rm -rf "$1"
  mkdir -p "$1"
  (cd "$1" && go mod init "ideapool-build/$2" >/dev/null 2>&1)
}

# local_replaces GOMOD: module paths that GOMOD replaces with a local
# directory ("=> ./staging/..." or "=> ../api"). Those replacements only work
# inside the upstream repo checkout, so our throwaway module must re-point
# each of them at the published module of the matching version.
local_replaces() {
  awk '
    /^replace[ \t]*\($/ { inblock = 1; next }
    inblock && /^\)/    { inblock = 0; next }
    {
      line = $0
      if (!inblock) { if (line !~ /^replace[ \t]/) next; sub(/^replace[ \t]+/, "", line) }
      n = split(line, f, /[ \t]+/)
      # f[1] may be empty when the line is indented
      i = (f[1] == "") ? 2 : 1
      for (j = i; j <= n; j++) if (f[j] == "=>") { if (f[j+1] ~ /^\.\.?\//) print f[i]; break }
    }' "$1"
}

# required_at GOMOD MODULE: true when GOMOD requires MODULE (any version).
required_at() { grep -qE "^[[:space:]]*(require[[:space:]]+)?${2//./\\.}[[:space:]]+v" "$1"; }

# --- Debian packages (hack/tools.sh promtool, hack/node-assets.sh) -----------

maybe_sudo() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# apt_install_no_start LOGFILE PKG...: apt-get update and install PKGs,
# without letting their packages start services (Prometheus on :9090, a
# containerd of the distribution's own): a policy-rc.d exiting 101 tells
# invoke-rc.d/deb-systemd-invoke "don't start services". One is added (and
# later removed) only if none is there already.
apt_install_no_start() {
  local logfile=$1 policy=/usr/sbin/policy-rc.d ours=0 rc=0
  shift
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, from ideapool hack/lib.sh\nexit 101\n' | maybe_sudo tee "$policy" >/dev/null
    maybe_sudo chmod 755 "$policy"
    ours=1
  fi
  maybe_sudo apt-get update -qq >>"$logfile" 2>&1 &&
    maybe_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$logfile" 2>&1 ||
    rc=$?
  if ((ours)); then maybe_sudo rm -f "$policy"; fi
  return "$rc"
}
