#!/usr/bin/env bash
# The README's main job: build, compile the bundled tiny model, answer one chat request.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
"$ROOT/tools/setup.sh"
"$ROOT/tools/build.sh"
MODEL="$ROOT/tests/fixtures/qwen2-tiny-r1"
PLAN="$BUILD_DIR/demo/qwen2-tiny-r1.dsplan"
mkdir -p "$(dirname "$PLAN")"
"$BUILD_DIR/bin/dscc" compile "$MODEL" -o "$PLAN" --target cpu
"$BUILD_DIR/bin/dsrt" inspect "$PLAN" | head -n 20
echo "--- chat request: 'What is 1+1?' (random weights: the text is gibberish by design)"
"$BUILD_DIR/bin/dsrt" generate "$PLAN" --chat "What is 1+1?" --max-new-tokens 24 --temperature 0
