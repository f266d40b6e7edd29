#!/usr/bin/env bash
# test-kernel.sh - the kernel lane (npm run test:kernel): compile
# test/vm/**/*.test.ts (and what they import) on the host, then run
# test/vm/*.test.ts with node's test runner inside ONE VM
# (scripts/vm/run.sh), and each test/vm/lifecycle/*.test.ts in a fresh
# VM of its own: those drive the real dm-remap-v4 module into hangs and
# oopses, after which a kernel is not to be trusted.
#
#   bash scripts/vm/test-kernel.sh [test/vm/x.test.ts ...]   (default: all)
#
# Compiling happens on the host because the VM emulates the CPU (TCG): tsc
# there takes ~15x longer. Exit status: the first failing run's (the test
# runner's, or run.sh's 124/125 for harness failures), 0 when all pass.
# Env: REMAPSIM_KERNEL_TEST_TIMEOUT (s per VM, default 900).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=.tmp/kernel-tests
VM_DIR=${REMAPSIM_VM_DIR:-/var/tmp/remapsim-vm}

if [ $# -gt 0 ]; then sources=("$@"); else sources=(test/vm/*.test.ts test/vm/lifecycle/*.test.ts); fi
shared=()
own=()
for s in "${sources[@]}"; do
  case "$s" in
    test/vm/lifecycle/*.test.ts) own+=("$OUT/${s%.ts}.js") ;;
    test/vm/*.test.ts) shared+=("$OUT/${s%.ts}.js") ;;
    *) echo "test-kernel: '$s' is not a test/vm/*.test.ts or test/vm/lifecycle/*.test.ts file" >&2; exit 2 ;;
  esac
  [ -f "$s" ] || { echo "test-kernel: no such file: $s" >&2; exit 2; }
done

t0=$EPOCHREALTIME
node_modules/.bin/tsc -p scripts/vm/tsconfig.kernel-tests.json || exit 2
for f in "${shared[@]}" "${own[@]}"; do
  # an incremental build does not re-emit outputs deleted behind its back
  [ -f "$f" ] || { rm -rf "$OUT"; node_modules/.bin/tsc -p scripts/vm/tsconfig.kernel-tests.json || exit 2; break; }
done
# src/version.ts reads ../package.json relative to the compiled file
ln -sf ../../package.json "$OUT/package.json"
awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "test-kernel: compiled on the host in %.1f s\n", b - a }' >&2
echo "test-kernel: dm-remap-v4 module: $(cat "$VM_DIR/dm-remap.note" 2>/dev/null || echo 'unknown (run scripts/vm/setup.sh)')" >&2

run_vm() {
  bash scripts/vm/run.sh --timeout "${REMAPSIM_KERNEL_TEST_TIMEOUT:-900}" -- \
    node --enable-source-maps --test --test-reporter=spec --test-timeout=300000 "$@"
}
status=0
if [ ${#shared[@]} -gt 0 ]; then run_vm "${shared[@]}" || status=$?; fi
for f in "${own[@]}"; do
  echo "test-kernel: ${f#$OUT/} in a fresh VM" >&2
  run_vm "$f" || { rc=$?; [ "$status" = 0 ] && status=$rc; }
done
# the power cut: a VM killed under a workload, a second one verifying, the model beside (whole lane only)
if [ $# -eq 0 ]; then
  if grep -q "dm-remap.ko\|built from" "$VM_DIR/dm-remap.note" 2>/dev/null; then
    echo "test-kernel: the power cut (bench/powercut.ts): two VMs" >&2
    node_modules/.bin/tsc -p tsconfig.build.json || exit 2
    node_modules/.bin/tsx bench/powercut.ts || { rc=$?; [ "$status" = 0 ] && status=$rc; }
  else
    echo "test-kernel: skipping the power cut: no dm-remap-v4 module ($(cat "$VM_DIR/dm-remap.note" 2>/dev/null))" >&2
  fi
fi
exit "$status"
