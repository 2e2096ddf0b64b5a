#!/usr/bin/env bash
# Runs HERE after make_plans.sh: the plans in .deps/plans are ~12 MB each, mostly the
# embedded 11 MB tokenizer.json, and the device tool carries at most 64 MiB, so they
# travel as one xz archive (about 8x smaller): .deps/plans.tar.xz replaces .deps/plans.
# tools/gpu/run.sh and bench.sh unpack it on the GPU machine (unpack_plans below).
#   tools/gpu/pack_plans.sh            pack (and remove .deps/plans)
#   tools/gpu/pack_plans.sh --unpack   the reverse (what the GPU scripts do)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
D="$ROOT/.deps"
if [ "${1:-}" = --unpack ]; then
  if [ -f "$D/plans.tar.xz" ]; then
    rm -rf "$D/plans" && tar -C "$D" -xJf "$D/plans.tar.xz" && rm -f "$D/plans.tar.xz"
  fi
  exit 0
fi
[ -d "$D/plans" ] || { echo "pack_plans.sh: no $D/plans (run tools/gpu/make_plans.sh first)" >&2; exit 1; }
XZ_OPT="${XZ_OPT:--3 -T0}" tar -C "$D" -cJf "$D/plans.tar.xz.tmp" plans
mv "$D/plans.tar.xz.tmp" "$D/plans.tar.xz"
rm -rf "$D/plans"
du -sh "$D" "$D/plans.tar.xz"
