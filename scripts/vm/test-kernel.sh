#!/usr/bin/env bash
# test-kernel.sh - the kernel lane (npm run test:kernel): compile
# test/kernel/*.test.ts (and what they import) on the host, then run them all
# with node's test runner inside ONE VM (scripts/vm/run.sh).
#
#   bash scripts/vm/test-kernel.sh [test/kernel/x.test.ts ...]   (default: all)
#
# Compiling happens on the host because the VM emulates the CPU (TCG): tsc
# there takes ~15x longer. Exit status: the test runner's, or run.sh's
# 124/125 for harness failures. Env: REMAPSIM_KERNEL_TEST_TIMEOUT (s, default 900).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=.tmp/kernel-tests

if [ $# -gt 0 ]; then sources=("$@"); else sources=(test/kernel/*.test.ts); fi
js=()
for s in "${sources[@]}"; do
  case "$s" in
    test/kernel/*.test.ts) [ -f "$s" ] || { echo "test-kernel: no such file: $s" >&2; exit 2; } ;;
    *) echo "test-kernel: '$s' is not a test/kernel/*.test.ts file" >&2; exit 2 ;;
  esac
  js+=("$OUT/${s%.ts}.js")
done
[ -f "${sources[0]}" ] || { echo "test-kernel: no test/kernel/*.test.ts files" >&2; exit 2; }

t0=$EPOCHREALTIME
node_modules/.bin/tsc -p scripts/vm/tsconfig.kernel-tests.json
for f in "${js[@]}"; do
  # an incremental build does not re-emit outputs deleted behind its back
  [ -f "$f" ] || { rm -rf "$OUT"; node_modules/.bin/tsc -p scripts/vm/tsconfig.kernel-tests.json; break; }
done
# src/version.ts reads ../package.json relative to the compiled file
ln -sf ../../package.json "$OUT/package.json"
awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "test-kernel: compiled on the host in %.1f s\n", b - a }' >&2

exec bash scripts/vm/run.sh --timeout "${REMAPSIM_KERNEL_TEST_TIMEOUT:-900}" -- \
  node --enable-source-maps --test --test-reporter=spec --test-timeout=300000 "${js[@]}"
