#!/usr/bin/env bash
# Run HERE (the Debian machine) before a GPU run: fills .deps/ (git-ignored) with what the
# GPU machine lacks: header-only libraries, the flatc-generated plan header, utf8proc,
# PCRE2 headers and the GoogleTest sources. The run tool carries it with `carry: [".deps"]`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
D="$ROOT/.deps"
rm -rf "$D" && mkdir -p "$D/include" "$D/lib" "$D/gen/runtime/plan" "$D/src"
cp -r /usr/include/flatbuffers /usr/include/CLI /usr/include/nlohmann /usr/include/httplib.h \
      /usr/include/utf8proc.h /usr/include/pcre2.h "$D/include/"
cp -P /usr/lib/x86_64-linux-gnu/libutf8proc.so* "$D/lib/"
flatc --cpp --scoped-enums -o "$D/gen/runtime/plan" "$ROOT/runtime/plan/plan.fbs"
cp -r /usr/src/googletest "$D/src/"
du -sh "$D"
