#!/usr/bin/env bash
# Start a throwaway PostgreSQL server, installing Debian's package if no
# server binaries are found.
#
# Usage (normally through hack/with-postgres.sh):
#   source hack/postgres.sh
#   pg_start      # sets PG_URL, PG_DATA, PG_PORT, PG_USER
#   pg_stop       # stops the server and deletes PG_DATA
#
# Run directly (bash hack/postgres.sh) it starts a server, prints its URL and
# waits; Ctrl-C stops it and removes its data.
#
# The server listens on 127.0.0.1 only, trusts loopback connections and keeps
# fsync on, since the tests check durability. initdb and postgres refuse to
# run as root; as root they run as the user "postgres" (created by Debian's
# package) or else a system user "ideapool-pg" created here.

set -euo pipefail

pg_log() { echo "postgres.sh: $*" >&2; }

# pg_find_bindir prints the directory holding initdb, pg_ctl and postgres.
pg_find_bindir() {
	local d
	if command -v initdb >/dev/null && command -v pg_ctl >/dev/null && command -v postgres >/dev/null; then
		# Resolve symlinks so all three come from the same installation.
		dirname "$(readlink -f "$(command -v initdb)")"
		return 0
	fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

pg_install() {
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null || { pg_log "PostgreSQL is not installed and sudo is missing; install the postgresql package"; return 1; }
		sudo=(sudo)
	fi
	pg_log "PostgreSQL not found; installing Debian's postgresql package"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2
}

# pg_free_port prints a loopback TCP port nobody listens on.
pg_free_port() {
	local port i
	for i in $(seq 1 100); do
		port=$((20000 + RANDOM % 20000))
		if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	pg_log "no free port found"
	return 1
}

# pg_as runs a command as PG_USER (or as ourselves when not root).
pg_as() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u "$PG_USER" -- "$@"
	else
		"$@"
	fi
}

pg_start() {
	local bindir
	if ! bindir=$(pg_find_bindir); then
		pg_install
		bindir=$(pg_find_bindir) || { pg_log "PostgreSQL binaries still not found after installing"; return 1; }
	fi
	PG_BINDIR=$bindir

	if [[ $(id -u) -eq 0 ]]; then
		if id postgres >/dev/null 2>&1; then
			PG_USER=postgres
		else
			PG_USER=ideapool-pg
			id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
		fi
	else
		PG_USER=$(id -un)
	fi

	# As root, TMPDIR may be private to root; PG_USER must reach PG_DATA.
	local base=${TMPDIR:-/tmp}
	[[ $(id -u) -eq 0 ]] && base=/tmp
	PG_DATA=$(mktemp -d "$base/ideapool-pg.XXXXXX")
	chmod 0700 "$PG_DATA"
	[[ $(id -u) -eq 0 ]] && chown "$PG_USER:" "$PG_DATA"
	PG_PORT=$(pg_free_port)

	pg_as "$bindir/initdb" -D "$PG_DATA/data" -U "$PG_USER" --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 >"$PG_DATA/initdb.log" 2>&1 ||
		pg_as "$bindir/initdb" -D "$PG_DATA/data" -U "$PG_USER" --auth=trust \
			--encoding=UTF8 --no-locale >"$PG_DATA/initdb.log" 2>&1 ||
		{ cat "$PG_DATA/initdb.log" >&2; return 1; }

	# -w waits until the server accepts connections.
	if ! pg_as "$bindir/pg_ctl" -D "$PG_DATA/data" -l "$PG_DATA/server.log" -w -t 60 start \
		-o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DATA -c fsync=on -c max_connections=200" >/dev/null; then
		cat "$PG_DATA/server.log" >&2
		return 1
	fi
	PG_URL="postgres://$PG_USER@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
	export PG_URL PG_DATA PG_PORT PG_USER PG_BINDIR
}

pg_stop() {
	if [[ -n ${PG_DATA:-} && -d $PG_DATA ]]; then
		if [[ -n ${PG_BINDIR:-} && -f $PG_DATA/data/postmaster.pid ]]; then
			pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DATA/data" -m fast -w stop >/dev/null 2>&1 || true
		fi
		rm -rf "$PG_DATA"
	fi
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	trap 'pg_stop; kill $(jobs -p) 2>/dev/null || true' EXIT
	trap 'exit 130' INT TERM
	pg_start
	echo "PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}') at $PG_URL (data $PG_DATA); Ctrl-C stops it"
	# wait, unlike a foreground sleep, returns at once on a signal.
	while :; do
		sleep 3600 &
		wait $!
	done
fi
