#!/usr/bin/env bash
# Property-based check of the HTTP API against its own OpenAPI schema (issue #5): no 5xx for any
# input, and every response matching the schema. Schemathesis lives in a throwaway venv of its
# own, never in the test extras: its pytest plugin would make every pytest process (each xdist
# worker of every run) import hypothesis + schemathesis.
#
#   tests/schemathesis_check.sh [MAX_EXAMPLES]      (env: PTD_ST_VENV, default /tmp/ptd-st)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
VENV=${PTD_ST_VENV:-/tmp/ptd-st}
EXAMPLES=${1:-25}

if [ ! -x "$VENV/bin/st" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q schemathesis requests
fi

DATA=$(mktemp -d /tmp/ptd-st-data.XXXXXX)
PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The API under test runs on SQLite with the in-memory layer, whatever the caller's env says.
export PTD_DATA_DIR=$DATA PTD_MAX_CONCURRENT_RUNS=1
unset DATABASE_URL REDIS_URL DJANGO_SETTINGS_MODULE

"$PYTHON" manage.py serve --port "$PORT" >"$DATA/serve.log" 2>&1 &
SERVER=$!
cleanup() {
  kill -TERM "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT

for _ in $(seq 1 600); do  # bounded: at most 60 s
  if "$PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "serve exited:" >&2; cat "$DATA/serve.log" >&2; exit 1
  fi
  sleep 0.1
done

TOKEN=$("$PYTHON" manage.py create_token admin --name schemathesis 2>/dev/null | tail -n 1)

status=0
# From the temp dir: schemathesis keeps its example database (.schemathesis/) in the cwd.
(cd "$DATA" && "$VENV/bin/st" run "http://127.0.0.1:$PORT/api/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,response_schema_conformance \
  --max-examples "$EXAMPLES" --seed 5 --workers 1 --request-timeout 20 \
  --phases examples,coverage,fuzzing) || status=$?

if grep -q "Traceback" "$DATA/serve.log"; then
  echo "--- the server logged tracebacks:" >&2
  grep -B2 -A25 "Traceback" "$DATA/serve.log" | head -120 >&2
  status=1
fi
exit $status
