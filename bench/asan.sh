#!/bin/bash
# The addon's unit tests (test/native) under AddressSanitizer and LeakSanitizer: builds an
# ASan copy of the addon in a scratch directory, preloads libasan into Node, and loads that
# copy through VHOSTSCOPE_ADDON. Leaks inside Node/V8/libuv themselves are suppressed; a leak or
# memory error in vhostscope_native.node fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
B="${TMPDIR:-/tmp}/vhostscope-asan"
rm -rf "$B"; mkdir -p "$B"
cp -r binding.gyp native package.json "$B/"; ln -s "$PWD/node_modules" "$B/node_modules"
prefix=$(dirname "$(dirname "$(command -v node)")")
gyp="$prefix/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
(cd "$B" && CXXFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" LDFLAGS="-fsanitize=address" node "$gyp" rebuild --nodedir="$prefix" >"$B/build.log" 2>&1) || { tail -20 "$B/build.log"; exit 1; }
cat >"$B/lsan.supp" <<'SUPP'
leak:node::
leak:v8::
leak:uv_
leak:/usr/bin/node
leak:libstdc++
leak:libcrypto
leak:libicu
SUPP
npx tsc -p tsconfig.json
VHOSTSCOPE_ADDON="$B/build/Release/vhostscope_native.node" LD_PRELOAD="$(gcc -print-file-name=libasan.so)" \
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 LSAN_OPTIONS="suppressions=$B/lsan.supp:print_suppressions=0" \
  npx vitest run test/native test/integration/interpose.test.ts test/integration/backend-channel.test.ts --pool=forks 2>&1 | tee "$B/test.log" | grep -E 'Tests|ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY'
! grep -qE 'ERROR: (Address|Leak)Sanitizer' "$B/test.log"
