#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server, for example:
#   hack/with-postgres.sh go test ./...
# The command sees IDEAPOOL_TEST_POSTGRES_URL. The server and its data are
# removed afterwards, whatever happens; the command's exit code is ours.

set -euo pipefail

if [[ $# -eq 0 ]]; then
	echo "usage: $0 COMMAND [ARGS...]" >&2
	exit 2
fi

# shellcheck source=hack/postgres.sh
source "$(dirname "${BASH_SOURCE[0]}")/postgres.sh"

trap pg_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
pg_start
echo "PostgreSQL running at $PG_URL (data in $PG_DATA)" >&2
export IDEAPOOL_TEST_POSTGRES_URL=$PG_URL

set +e
"$@"
rc=$?
set -e
exit "$rc"
