#!/usr/bin/env bash
# Regenerates internal/password/common-passwords.txt from the npm package
# @zxcvbn-ts/language-common (MIT; the Xato/zxcvbn frequency list of common
# passwords), one lower-case password a line. The licence is kept beside it.
set -euo pipefail
VERSION=4.1.3
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@zxcvbn-ts/language-common@$VERSION" >/dev/null && tar xzf ./*.tgz)
python3 - "$tmp/package/src/passwords.json" > internal/password/common-passwords.txt <<'PY'
import json, sys
seen = set()
for p in json.load(open(sys.argv[1])):
    p = p.strip().lower()
    if p and p not in seen and "\n" not in p:
        seen.add(p)
        print(p)
PY
cp "$tmp/package/LICENSE.txt" internal/password/common-passwords.LICENSE
echo "wrote $(wc -l < internal/password/common-passwords.txt) passwords (@zxcvbn-ts/language-common $VERSION)"
