#!/usr/bin/env bash
# Run HERE (the Debian machine) before a GPU run: fills .deps/ (git-ignored) with what the
# GPU machine lacks: header-only libraries, the flatc-generated plan header, utf8proc,
# PCRE2 headers, cpp-httplib and the GoogleTest sources. The run tool carries it with `carry: [".deps"]`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
D="$ROOT/.deps"
rm -rf "$D" && mkdir -p "$D/include" "$D/lib" "$D/gen/runtime/plan" "$D/src"
cp -r /usr/include/flatbuffers /usr/include/CLI /usr/include/nlohmann /usr/include/httplib.h \
      /usr/include/utf8proc.h /usr/include/pcre2.h "$D/include/"
cp -P /usr/lib/x86_64-linux-gnu/libutf8proc.so* "$D/lib/"
# Debian's cpp-httplib is a split build (declarations-only header + library built with
# OpenSSL/zlib/brotli support): carry the library and the headers its header includes.
cp -P /usr/lib/x86_64-linux-gnu/libcpp-httplib.so* "$D/lib/"
cp -r /usr/include/openssl /usr/include/brotli /usr/include/zlib.h /usr/include/zconf.h "$D/include/"
cp -r /usr/include/x86_64-linux-gnu/openssl/* "$D/include/openssl/" 2>/dev/null || true
flatc --cpp --scoped-enums -o "$D/gen/runtime/plan" "$ROOT/runtime/plan/plan.fbs"
cp -r /usr/src/googletest "$D/src/"
# Gloo (host collectives: CPU tensor parallelism, and the rendezvous + NCCL id exchange of
# multi-process GPU runs) with libhiredis, the one library libgloo.so.0 needs that the GPU
# machine lacks (it has libibverbs and libnl: carrying Debian's copies would shadow them, and
# NCCL dlopens libibverbs); the CMake lookup (runtime/CMakeLists.txt) finds them under
# DS_DEPS_DIR and gives the executables an rpath to it.
if [ -f /usr/lib/libgloo.so.0 ]; then
  cp -r /usr/include/gloo "$D/include/"
  cp -P /usr/lib/libgloo.so* "$D/lib/"
  for lib in $(ldd /usr/lib/libgloo.so.0 | awk '/=> \//{print $3}' | grep -E 'libhiredis'); do
    cp -L "$lib" "$D/lib/$(basename "$lib")"
  done
fi
du -sh "$D"
