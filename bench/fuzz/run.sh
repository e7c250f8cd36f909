#!/bin/bash
# Fuzzing: the native framing under libFuzzer (coverage-guided, AddressSanitizer), and every
# TypeScript decoder, the validator, the checker and the recording reader with seeded random and
# mutated inputs (test/fuzz/). Prints cases tried and findings.
#   bench/fuzz/run.sh [seconds=60] [seed=1]
# CI runs a short fixed-seed pass through `npm test` (test/fuzz/*.test.ts).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS="${1:-60}"; SEED="${2:-1}"
CXX="${CXX:-clang++-14}"
command -v "$CXX" >/dev/null || { echo "needs $CXX (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }
OUT="${TMPDIR:-/tmp}/vhostscope-fuzz"; mkdir -p "$OUT/corpus"
"$CXX" -g -O1 -std=c++17 -fsanitize=fuzzer,address,undefined -Inative native/framing.cc native/fuzz/framing_fuzzer.cc -o "$OUT/framing_fuzzer"
# seed corpus: the raw messages of the real recordings, one write each
node -e '
const fs = require("fs"), path = require("path");
const { readRecording } = require("./dist/recording/reader");
let n = 0;
for (const f of fs.readdirSync("recordings").filter((f) => f.endsWith(".vhsrec")))
  for (const r of readRecording(path.join("recordings", f)).records)
    if (r.type === "message" && r.raw.length < 250) fs.writeFileSync(path.join(process.argv[1], `seed-${n++}`), Buffer.concat([Buffer.from([3, r.raw.length, r.fds.length]), r.raw]));
console.log(`seed corpus: ${n} messages from recordings/`);
' "$OUT/corpus"
half=$(( SECS / 2 > 0 ? SECS / 2 : 1 ))
echo "== native framing (libFuzzer, ${half}s, seed $SEED)"
"$OUT/framing_fuzzer" -seed="$SEED" -max_total_time="$half" -max_len=4096 -print_final_stats=1 -artifact_prefix="$OUT/" "$OUT/corpus" 2>"$OUT/libfuzzer.log" || { tail -40 "$OUT/libfuzzer.log"; echo "FINDING: the native framing fuzzer crashed (log above)"; exit 1; }
grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$OUT/libfuzzer.log"
echo "== TypeScript decoders, validator, checker, recording reader (${half}s, seed $SEED)"
# a failing case fails the script (vitest's exit status); the grep only shortens what is printed
rc=0
VHS_FUZZ_SECONDS="$half" VHS_FUZZ_SEED="$SEED" npx vitest run test/fuzz/fuzz.test.ts --reporter=verbose >"$OUT/ts.log" 2>&1 || rc=$?
grep -E 'cases|✓|×|FAIL|Error' "$OUT/ts.log" || true
[ "$rc" = 0 ] || { echo "FINDING: the TypeScript fuzz pass failed (full log: $OUT/ts.log)"; exit 1; }
