#!/usr/bin/env bash
# Fuzzes the served OpenAPI document with schemathesis (from PyPI): no 5xx, every
# status, content type and JSON body as documented. Bounded in time and examples,
# with a fixed seed so a run can be reproduced. Needs the release wasm and the
# spin-test-host binary built (tests/run.sh builds both before calling this).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_TIME=${FUZZ_MAX_TIME:-180}
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-25}
PORT=${FUZZ_PORT:-38517}
BASE="http://127.0.0.1:$PORT"

if ! schemathesis --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

data=$(mktemp -d)
host_log="$data/host.log"
target/debug/spin-test-host --listen "127.0.0.1:$PORT" --data-dir "$data/.spin" >"$host_log" 2>&1 &
host=$!
trap 'kill $host 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 120); do
  curl -fsS "$BASE/healthcheck" >/dev/null 2>&1 && break
  sleep 0.5
done

# The first user is the admin, so every admin route is reachable too.
password='fuzz-Passw0rd!'
curl -fsS -X POST "$BASE/users" -d "{\"email\":\"fuzz@example.com\",\"password\":\"$password\"}"
token=$(curl -fsS -X POST "$BASE/users/fuzz@example.com/tokens" -d "{\"password\":\"$password\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

# Logging out would end the run's session; everything else is fuzzed.
status=0
schemathesis run "$BASE/openapi.json" \
  --header "Authorization: bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --exclude-operation-id delete_users_tokens \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --max-time "$MAX_TIME" \
  --seed 20261126 \
  --workers 1 \
  --request-timeout 20 \
  --suppress-health-check all || status=$?
if [ "$status" -ne 0 ]; then
  echo "schemathesis failed; host log tail:"
  tail -50 "$host_log"
fi
exit "$status"
