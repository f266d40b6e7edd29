#!/bin/sh
# /init of the kernel-lane VM (PID 1, busybox sh; built into the initramfs by
# setup.sh). The host's run.sh exports a control directory over 9p (tag
# "ctl") holding `config` and `cmd`; this script builds a root from the
# host's filesystem, runs `cmd` in it, writes `status`, and powers off.
# Anything that goes wrong before the command runs is written to
# ctl/harness-error, so the host can tell a harness failure from a test failure.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
umask 022
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

CTL=0
log() { echo "vm-init: $*"; }
off() { sync; [ "$CTL" = 1 ] && umount /ctl; poweroff -f; sleep 30; }
fail() {
  log "harness error: $*"
  [ "$CTL" = 1 ] && echo "$*" >>/ctl/harness-error
  off
}

KVER=$(cat /etc/kver)
for m in $(cat /etc/boot-modules); do modprobe "$m" || log "modprobe $m failed"; done

P9="trans=virtio,version=9p2000.L,msize=512000"
mount -t 9p -o "$P9,cache=none" ctl /ctl || fail "cannot mount the control share"
CTL=1
. /ctl/config || fail "cannot read /ctl/config"

# Root: the host's / (read-only, cached) under a RAM layer, so the command can
# write anywhere; only the shares below reach the host's disk.
N=/newroot
mount -t 9p -o "$P9,ro,cache=loose" hostroot /host || fail "cannot mount the host root"
mount -t tmpfs -o mode=755 tmpfs /rw && mkdir /rw/upper /rw/work \
  && mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work overlay $N \
  || fail "cannot mount the overlay root"

# The host's full module tree (same kernel), for modprobe and for the
# kernel's own request_module (dm targets load on first use).
[ -d "$N/lib/modules/$KVER" ] || fail "the host has no /lib/modules/$KVER"
mount --bind "$N/lib/modules/$KVER" "/lib/modules/$KVER"
echo /sbin/modprobe >/proc/sys/kernel/modprobe
for m in $(cat /etc/preload-modules); do modprobe "$m" || fail "modprobe $m failed"; done
# dm-remap.ko is the system under test: if it will not load, the command runs
# without it (one line on its stderr says so); the lane's own modules must load.
: >/ctl/stderr
for ko in /extra/*.ko; do
  [ -f "$ko" ] || continue
  case "$ko" in
    */dm-remap.ko) insmod "$ko" 2>/tmp/insmod.err \
      || echo "vm-init: the dm-remap-v4 module did not load: $(cat /tmp/insmod.err)" >>/ctl/stderr ;;
    *) insmod "$ko" || fail "insmod $ko failed" ;;
  esac
done

mount -t proc proc $N/proc
mount -t sysfs sysfs $N/sys
mount -t devtmpfs devtmpfs $N/dev
mkdir -p $N/dev/pts $N/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $N/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $N/dev/shm
mount -t tmpfs -o mode=1777 tmpfs $N/tmp
mount -t tmpfs -o mode=755 tmpfs $N/run
ip link set lo up 2>/dev/null

# Writable shares, written through to the host: SHARES="tag=/guest/path ..."
for s in $SHARES; do
  mkdir -p "$N${s#*=}" && mount -t 9p -o "$P9,cache=mmap" "${s%%=*}" "$N${s#*=}" \
    || fail "cannot mount share ${s%%=*} at ${s#*=}"
done

mkdir -p $N/run/vm && cp /ctl/cmd $N/run/vm/cmd || fail "cannot copy the command"
: >/ctl/t-cmd
chroot $N /bin/bash /run/vm/cmd </dev/null >/ctl/stdout 2>>/ctl/stderr
rc=$?
dmesg >/ctl/dmesg 2>/dev/null
sync
for s in $SHARES; do umount "$N${s#*=}" 2>/dev/null || umount -l "$N${s#*=}"; done
echo "$rc" >/ctl/status.tmp && mv /ctl/status.tmp /ctl/status
off
