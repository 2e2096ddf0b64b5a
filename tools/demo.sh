#!/usr/bin/env bash
# The README's main job: build, compile the bundled tiny model, serve it, answer one chat request.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
"$ROOT/tools/setup.sh"
"$ROOT/tools/build.sh"
MODEL="$ROOT/tests/fixtures/qwen2-tiny-r1"
WORK="$BUILD_DIR/demo"
PLAN="$WORK/qwen2-tiny-r1.dsplan"
mkdir -p "$WORK"

echo "== dscc compile $MODEL"
"$BUILD_DIR/bin/dscc" compile "$MODEL" -o "$PLAN" --target cpu
"$BUILD_DIR/bin/dsrt" inspect "$PLAN" > "$WORK/inspect.txt"
head -n 12 "$WORK/inspect.txt"

echo "== dsrt serve (port chosen by the OS)"
LOG="$WORK/serve.log"
"$BUILD_DIR/bin/dsrt" serve "$PLAN" --host 127.0.0.1 --port 0 --served-model-name tiny-r1 \
    --reasoning-parser deepseek_r1 2> "$LOG" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
URL=""
for _ in $(seq 1 300); do
  URL="$(grep -o 'listening on http://[0-9.:]*' "$LOG" | head -n1 | sed 's/listening on //')" || true
  [ -n "$URL" ] && break
  kill -0 $PID 2>/dev/null || { cat "$LOG"; echo "demo: dsrt serve exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { cat "$LOG"; echo "demo: server did not start" >&2; exit 1; }

echo "== POST $URL/v1/chat/completions (random weights: the text is gibberish by design)"
python3 - "$URL" <<'PY'
import json, sys, urllib.request
url = sys.argv[1] + "/v1/chat/completions"
body = {"model": "tiny-r1", "messages": [{"role": "user", "content": "What is 1+1?"}],
        "max_tokens": 24, "temperature": 0}
req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
resp = json.load(urllib.request.urlopen(req, timeout=120))
print(json.dumps(resp, indent=2, ensure_ascii=False))
choice = resp["choices"][0]
assert choice["finish_reason"] in ("stop", "length"), choice
assert resp["usage"]["completion_tokens"] > 0
PY
