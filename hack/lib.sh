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
