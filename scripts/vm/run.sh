#!/usr/bin/env bash
# run.sh - run one command as root in a fresh VM with real device-mapper.
#
#   scripts/vm/run.sh [options] [--] command [args...]
#
#   --timeout S      kill the VM after S seconds (default 600, env REMAPSIM_VM_TIMEOUT)
#   --mem MB         guest memory (default 2048)
#   --share DIR      also share host DIR read-write at the same path (repeatable;
#                    the project directory is always shared)
#   --cwd DIR        working directory in the guest (default: the current one)
#   --env NAME=VAL   export to the command (repeatable)
#   --quiet          no timing line on stderr
#
# The guest runs the Debian kernel prepared by setup.sh on a copy-on-write
# view of the host's filesystem (host programs, node, node_modules), with
# loop, dm-mod and the dm targets loaded, DM_DISABLE_UDEV=1 (no udev in the
# guest: libdevmapper makes the /dev/mapper nodes itself) and REMAPSIM_VM=1.
# Writes outside the shared directories vanish with the VM.
#
# The command's stdout and stderr are streamed to ours and its exit status is
# ours. Harness failures instead exit 125 (VM not prepared, failed to boot,
# module load failed, no status) or 124 (timeout), after a line starting
# "run.sh: harness:". Env: REMAPSIM_VM_DIR (see setup.sh), REMAPSIM_VM_KEEP=1
# keeps the control directory (console log, dmesg) for debugging.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd -P)
VM_DIR=${REMAPSIM_VM_DIR:-/var/tmp/remapsim-vm}

harness() { echo "run.sh: harness: $*" >&2; exit 125; }
usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

TIMEOUT=${REMAPSIM_VM_TIMEOUT:-600}
MEM=2048
SHARES=("$PROJECT")
CWD=$PWD
ENVS=()
QUIET=0
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout|--mem|--share|--cwd|--env)
      [ $# -ge 2 ] || harness "$1 needs a value"
      case "$1" in
        --timeout) TIMEOUT=$2 ;; --mem) MEM=$2 ;; --share) SHARES+=("$2") ;;
        --cwd) CWD=$2 ;; --env) ENVS+=("$2") ;;
      esac
      shift 2 ;;
    --quiet) QUIET=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) harness "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { usage >&2; harness "no command given"; }
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || harness "--timeout must be a whole number of seconds >= 1, got '$TIMEOUT'"
[[ "$MEM" =~ ^[0-9]+$ ]] && [ "$MEM" -ge 256 ] || harness "--mem must be a number of MiB >= 256, got '$MEM'"
case "$CWD" in /*) ;; *) harness "--cwd must be an absolute path, got '$CWD'" ;; esac

for f in vmlinuz initramfs.cpio.gz kver; do
  [ -f "$VM_DIR/$f" ] || harness "the VM is not prepared ($VM_DIR/$f missing): run 'bash scripts/vm/setup.sh' as root"
done
# setup.sh records checksums of itself and init.sh (not mtimes: a fresh clone is always newer)
grep -qF "$(cksum <"$HERE/setup.sh") $(cksum <"$HERE/init.sh")" "$VM_DIR/stamp" 2>/dev/null \
  || harness "scripts/vm changed since the VM image was built: run 'bash scripts/vm/setup.sh' again"
command -v qemu-system-x86_64 >/dev/null || harness "qemu-system-x86_64 not found: run 'bash scripts/vm/setup.sh' as root"
KVER=$(cat "$VM_DIR/kver")
[ -d "/lib/modules/$KVER" ] || harness "/lib/modules/$KVER is gone (kernel package removed?): run 'bash scripts/vm/setup.sh' again"

# Boot path: uncompressed vmlinux through PVH with the tiny qboot firmware
# when both exist (~3 s faster under TCG), else SeaBIOS + bzImage.
KERNEL=$VM_DIR/vmlinuz
BIOS=()
if [ -f "$VM_DIR/vmlinux" ]; then
  for b in /usr/share/qemu/qboot.rom /usr/share/qboot/bios.bin; do
    [ -f "$b" ] && { KERNEL=$VM_DIR/vmlinux; BIOS=(-bios "$b"); break; }
  done
fi
# KVM only when the CPU can really do it (/dev/kvm alone is not enough).
if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
  ACCEL=(-accel kvm -cpu host); ACCEL_NAME=kvm
else
  ACCEL=(-accel tcg -cpu max); ACCEL_NAME=tcg
fi

CTL=$(mktemp -d "${TMPDIR:-/tmp}/remapsim-vm.XXXXXX") || harness "mktemp failed"
QPID=
TAILS=()
cleanup() {
  [ -n "$QPID" ] && kill "$QPID" 2>/dev/null
  for p in "${TAILS[@]}"; do kill "$p" 2>/dev/null; done
  if [ "${REMAPSIM_VM_KEEP:-0}" = 1 ]; then echo "run.sh: kept $CTL" >&2; else rm -rf "$CTL"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

virtfs_path() { printf '%s' "${1//,/,,}"; }   # qemu option syntax: ',' doubles
VIRTFS=(-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
        -virtfs "local,path=$(virtfs_path "$CTL"),mount_tag=ctl,security_model=none")
SHARE_CFG=
i=0
for s in "${SHARES[@]}"; do
  [ -d "$s" ] || harness "--share: $s is not a directory"
  s=$(cd "$s" && pwd -P)
  [[ "$s" =~ [[:space:]=] ]] && harness "--share: path may not contain whitespace or '=': $s"
  VIRTFS+=(-virtfs "local,path=$(virtfs_path "$s"),mount_tag=share$i,security_model=none,multidevs=remap")
  SHARE_CFG="$SHARE_CFG share$i=$s"
  i=$((i + 1))
done
printf 'SHARES=%q\n' "${SHARE_CFG# }" >"$CTL/config"

{
  echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  echo 'export HOME=/root LANG=C.UTF-8 TMPDIR=/tmp DM_DISABLE_UDEV=1 REMAPSIM_VM=1'
  [ -n "${CI:-}" ] && printf 'export CI=%q\n' "$CI"
  for e in "${ENVS[@]}"; do
    [[ "$e" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || harness "--env wants NAME=VALUE, got '$e'"
    printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"
  done
  printf 'cd %q || { echo "run.sh: harness: cannot cd to %q in the guest" >&2; exit 125; }\n' "$CWD" "$CWD"
  printf 'exec'; printf ' %q' "$@"; printf '\n'
} >"$CTL/cmd"
: >"$CTL/stdout"
: >"$CTL/stderr"

APPEND="console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init mitigations=off cryptomgr.notests random.trust_cpu=on tsc=reliable 8250.nr_uarts=1"
T0=$EPOCHREALTIME
qemu-system-x86_64 -nodefaults -no-user-config -M q35 "${ACCEL[@]}" -smp 1 -m "$MEM" \
  -display none -monitor none -serial "file:$CTL/console.log" -no-reboot \
  "${BIOS[@]}" -kernel "$KERNEL" -initrd "$VM_DIR/initramfs.cpio.gz" -append "$APPEND" \
  "${VIRTFS[@]}" </dev/null >"$CTL/qemu.log" 2>&1 &
QPID=$!
# The guest writes the command's output into the 9p control directory.
tail -s 0.2 -n +1 -f --pid="$QPID" "$CTL/stdout" & TAILS+=($!)
tail -s 0.2 -n +1 -f --pid="$QPID" "$CTL/stderr" >&2 & TAILS+=($!)

# Timings are taken here: the guest clock can jump under TCG.
T_CMD=
T_END=
TIMED_OUT=0
SECONDS=0
while kill -0 "$QPID" 2>/dev/null; do
  [ -z "$T_CMD" ] && [ -e "$CTL/t-cmd" ] && T_CMD=$EPOCHREALTIME
  if [ -z "$T_END" ] && [ -e "$CTL/status" ]; then T_END=$EPOCHREALTIME; END_S=$SECONDS; fi
  # The guest powers off right after writing the status; if it hangs
  # instead, the status is all we need.
  if [ -n "$T_END" ] && [ $((SECONDS - END_S)) -ge 10 ]; then
    kill "$QPID" 2>/dev/null; break
  fi
  if [ "$SECONDS" -ge "$TIMEOUT" ]; then
    TIMED_OUT=1
    kill "$QPID" 2>/dev/null; sleep 1; kill -9 "$QPID" 2>/dev/null
    break
  fi
  sleep 0.1
done
wait "$QPID" 2>/dev/null
QRC=$?
QPID=
for p in "${TAILS[@]}"; do wait "$p" 2>/dev/null; done
TAILS=()

if [ "$QUIET" = 0 ]; then
  [ -z "$T_END" ] && [ -e "$CTL/status" ] && T_END=$EPOCHREALTIME
  awk -v t0="$T0" -v t1="$EPOCHREALTIME" -v a="$ACCEL_NAME" -v k="$KVER" -v ts="$T_CMD" -v te="$T_END" 'BEGIN {
    boot = (ts != "") ? sprintf("%.1f s", ts - t0) : "n/a"
    cmd = (ts != "" && te != "") ? sprintf("%.1f s", te - ts) : "n/a"
    printf "run.sh: %s %s: boot %s, command %s, total %.1f s\n", a, k, boot, cmd, t1 - t0
  }' >&2
fi

if [ -s "$CTL/harness-error" ]; then
  echo "run.sh: harness: in the guest: $(cat "$CTL/harness-error")" >&2
  tail -n 20 "$CTL/console.log" >&2
  exit 125
fi
if [ -f "$CTL/status" ]; then
  exit "$(cat "$CTL/status")"
fi
if [ "$TIMED_OUT" = 1 ]; then
  echo "run.sh: harness: timed out after ${TIMEOUT} s; VM killed" >&2
  exit 124
fi
echo "run.sh: harness: the VM stopped (qemu exit $QRC) without a command status; last console lines:" >&2
tail -n 30 "$CTL/console.log" >&2
tail -n 10 "$CTL/qemu.log" >&2
exit 125
