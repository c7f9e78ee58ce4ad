#!/usr/bin/env bash
# Start and stop a PostgreSQL server of one's own, for tests that take the
# database away (the outage test of e2e/faults_outage_test.go) and must not
# touch the run's shared server of hack/with-postgres.sh.
#
# Usage:
#   hack/pg-instance.sh start DIR PORT   # initdb DIR/data on first use, start on 127.0.0.1:PORT, print the URL
#   hack/pg-instance.sh start DIR PORT ADDRESS CIDR
#                                        # also listen on ADDRESS (a node's, for its pods) and let clients
#                                        # from CIDR in with a password; print the URL through ADDRESS
#   hack/pg-instance.sh stop DIR         # stop it abruptly (pg_ctl -m immediate: like a crash)
#   hack/pg-instance.sh remove DIR       # stop it if running and delete DIR
#
# DIR is created if missing; as root it must lie where PG_USER can reach it
# (under /tmp, not in a 0700 directory of root's). start after stop reuses DIR/data (crash
# recovery included), so a test can bring the same database back. Binaries,
# install and the unprivileged user are those of hack/postgres.sh.

set -euo pipefail

# shellcheck source=hack/postgres.sh
source "$(dirname "${BASH_SOURCE[0]}")/postgres.sh"

usage() {
	awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}" >&2
	exit 2
}

# pg_user sets PG_USER as pg_start does: ourselves, or an unprivileged
# user when root (initdb and postgres refuse to run as root).
pg_user() {
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
}

pg_bindir() {
	if ! PG_BINDIR=$(pg_find_bindir); then
		pg_install
		PG_BINDIR=$(pg_find_bindir) || { pg_log "PostgreSQL binaries still not found after installing"; return 1; }
	fi
}

cmd=${1:-}
dir=${2:-}
[[ -n $cmd && -n $dir ]] || usage
pg_user
pg_bindir

case $cmd in
start)
	port=${3:-} address=${4:-} cidr=${5:-}
	[[ -n $port ]] || usage
	[[ -z $address || -n $cidr ]] || usage
	listen=127.0.0.1
	[[ -n $address ]] && listen="127.0.0.1,$address"
	mkdir -p "$dir"
	chmod 0700 "$dir"
	[[ $(id -u) -eq 0 ]] && chown "$PG_USER:" "$dir"
	if [[ ! -f $dir/data/PG_VERSION ]]; then
		pg_as "$PG_BINDIR/initdb" -D "$dir/data" -U "$PG_USER" --auth=trust \
			--encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
			pg_as "$PG_BINDIR/initdb" -D "$dir/data" -U "$PG_USER" --auth=trust \
				--encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
	fi
	# Clients beyond loopback (pods) need a password: trust stays local.
	if [[ -n $cidr ]] && ! grep -q "^host all all $cidr scram-sha-256\$" "$dir/data/pg_hba.conf"; then
		echo "host all all $cidr scram-sha-256" >>"$dir/data/pg_hba.conf"
	fi
	if ! pg_as "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
		-o "-c listen_addresses=$listen -p $port -k $dir -c fsync=on -c max_connections=100" >/dev/null; then
		tail -n 40 "$dir/server.log" >&2
		exit 1
	fi
	if [[ -z $address ]]; then
		echo "postgres://$PG_USER@127.0.0.1:$port/postgres?sslmode=disable"
		exit 0
	fi
	if [[ ! -f $dir/password ]]; then
		(umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$dir/password")
	fi
	pg_as "$PG_BINDIR/psql" -h "$dir" -p "$port" -U "$PG_USER" -d postgres -qAt \
		-c "ALTER USER \"$PG_USER\" PASSWORD '$(<"$dir/password")'" >/dev/null
	echo "postgres://$PG_USER:$(<"$dir/password")@$address:$port/postgres?sslmode=disable"
	;;
stop)
	if [[ -f $dir/data/postmaster.pid ]]; then
		pg_as "$PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
	fi
	;;
remove)
	if [[ -f $dir/data/postmaster.pid ]]; then
		pg_as "$PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
	;;
*)
	usage
	;;
esac
