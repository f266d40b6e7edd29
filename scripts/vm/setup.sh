#!/usr/bin/env bash
# setup.sh - prepare the kernel test lane (see test/vm/README.md).
#
#   bash scripts/vm/setup.sh [--force]
#
# 1. installs, with apt, whatever of these is missing: qemu-system-x86,
#    linux-image-6.12-amd64 and linux-headers-6.12-amd64 (Debian bookworm's
#    6.12 kernel, which the VM boots; its /lib/modules on the host is the
#    guest's module tree), busybox-static, cpio, dmsetup, mount (losetup),
#    gcc, make;
# 2. builds dm-dust.ko out of tree from Debian's linux-source-<x.y> when the
#    kernel lacks CONFIG_DM_DUST (Debian does not set it);
# 3. builds the real dm-remap-v4 module (dm-remap.ko, the system under test)
#    from a writable copy of $REMAPSIM_DM_REMAP_SRC (default
#    ../shared/third_party/dm-remap-v4 beside the project). Without the
#    source, or when it does not build, one line says so and the lane runs
#    without it (the tests that need it skip);
# 4. builds the initramfs (static busybox, virtio/9p/overlay modules,
#    scripts/vm/init.sh as /init, dm-dust.ko, dm-remap.ko) and an
#    uncompressed vmlinux.
#
# Output in $REMAPSIM_VM_DIR (default /var/tmp/remapsim-vm). Idempotent: each
# step is skipped when its output is up to date; --force rebuilds 2 to 4.
# Env: REMAPSIM_VM_DIR, REMAPSIM_VM_KVER (kernel version to use: a 6.9 or
# newer one for the module), REMAPSIM_DM_REMAP_SRC (the module's source).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
DMR_SRC=${REMAPSIM_DM_REMAP_SRC:-$PROJECT/../shared/third_party/dm-remap-v4}
VM_DIR=${REMAPSIM_VM_DIR:-/var/tmp/remapsim-vm}
KVER=${REMAPSIM_VM_KVER:-}
FORCE=0
case "${1:-}" in
  '') ;;
  --force) FORCE=1 ;;
  -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "setup: error: unknown argument '$1' (allowed: --force, --help)" >&2; exit 2 ;;
esac

say() { echo "setup: $*" >&2; }
die() { echo "setup: error: $*" >&2; exit 1; }
T_ALL=$EPOCHREALTIME
T_STEP=$EPOCHREALTIME
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f s", b - a }'; }
step_done() { say "$1 ($(elapsed "$T_STEP"))"; T_STEP=$EPOCHREALTIME; }

mkdir -p "$VM_DIR" 2>/dev/null && [ -w "$VM_DIR" ] \
  || die "cannot write to $VM_DIR (run as root, or set REMAPSIM_VM_DIR to a writable directory)"
APT_LOG=$VM_DIR/apt.log

# ------------------------------------------------------------------ kernel
# The lane boots Debian's 6.12 series: dm-remap-v4 needs kernel APIs from 6.9 on.
SERIES=6.12
# Newest installed kernel of that series that has a module tree with dm-mod.
find_kernel() {
  local f v
  for f in $(ls /boot/vmlinuz-"$SERIES".* 2>/dev/null | sort -V -r); do
    v=${f#/boot/vmlinuz-}
    if [ -f "/lib/modules/$v/modules.dep" ] && grep -q '/dm-mod\.ko' "/lib/modules/$v/modules.dep"; then
      echo "$v"; return 0
    fi
  done
  return 1
}
dust_builtin() { grep -qE '^CONFIG_DM_DUST=(y|m)' "/boot/config-$1" 2>/dev/null; }
# ldd fails ("not a dynamic executable") on a static binary
static_busybox() { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }

# ------------------------------------------------------------------ 1. packages
APT_UPDATED=0
apt_update_once() {
  [ "$APT_UPDATED" = 1 ] && return 0
  APT_UPDATED=1
  say "apt-get update"
  # Some configured sources may be unreachable; install still works from the rest.
  apt-get -o DPkg::Lock::Timeout=300 update >>"$APT_LOG" 2>&1 \
    || say "warning: apt-get update reported errors (see $APT_LOG); trying to install anyway"
}

pkgs=()
command -v qemu-system-x86_64 >/dev/null || pkgs+=(qemu-system-x86)
static_busybox || pkgs+=(busybox-static)
command -v cpio >/dev/null || pkgs+=(cpio)
command -v dmsetup >/dev/null || pkgs+=(dmsetup)
command -v losetup >/dev/null || pkgs+=(mount)
command -v xz >/dev/null || pkgs+=(xz-utils)
if [ -z "$KVER" ]; then KVER=$(find_kernel || true); fi
if [ -z "$KVER" ]; then
  # the meta packages pull the image and the headers of the same upload
  pkgs+=("linux-image-$SERIES-amd64" "linux-headers-$SERIES-amd64")
else
  [ -f "/boot/vmlinuz-$KVER" ] || die "kernel $KVER: /boot/vmlinuz-$KVER is missing (REMAPSIM_VM_KVER?)"
  [ -f "/lib/modules/$KVER/build/Makefile" ] || pkgs+=("linux-headers-$KVER")
fi
# gcc and make build dm-dust and dm-remap-v4 against the headers
command -v gcc >/dev/null || pkgs+=(gcc)
command -v make >/dev/null || pkgs+=(make)

if [ ${#pkgs[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing packages: ${pkgs[*]}; run this script as root (it installs them with apt-get)"
  command -v apt-get >/dev/null || die "missing packages: ${pkgs[*]}, and apt-get is not available"
  apt_update_once
  say "apt-get install ${pkgs[*]}"
  # INITRD=No: the kernel package's hook skips update-initramfs; the VM
  # boots with our own initramfs, so building Debian's one is wasted time.
  if ! INITRD=No DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
      --no-install-recommends "${pkgs[@]}" >>"$APT_LOG" 2>&1; then
    tail -n 15 "$APT_LOG" >&2
    die "apt-get install failed for: ${pkgs[*]} (full log: $APT_LOG)"
  fi
  step_done "packages installed"
else
  step_done "packages: all present"
fi

if [ -z "$KVER" ]; then KVER=$(find_kernel) || die "no $SERIES kernel with dm-mod in /boot after installing linux-image-$SERIES-amd64"; fi
MODDIR=/lib/modules/$KVER
[ -f "$MODDIR/modules.dep" ] || die "$MODDIR/modules.dep is missing (kernel $KVER not fully installed)"
for c in qemu-system-x86_64 cpio dmsetup losetup xz; do
  command -v "$c" >/dev/null || die "$c is still missing after the install step"
done
static_busybox || die "/bin/busybox is missing or not static (package busybox-static)"
say "kernel $KVER"

# ------------------------------------------------------------------ 2. dm-dust
DUST=$VM_DIR/dm-dust.ko
if ! dust_builtin "$KVER"; then
  if [ "$FORCE" = 0 ] && [ -f "$DUST" ] && [ "$(cat "$VM_DIR/dm-dust.kver" 2>/dev/null)" = "$KVER" ]; then
    step_done "dm-dust.ko up to date"
  else
    [ -f "$MODDIR/build/Makefile" ] || die "no kernel headers at $MODDIR/build (package linux-headers-$KVER)"
    command -v make >/dev/null && command -v gcc >/dev/null || die "gcc and make are needed to build dm-dust"
    MAJMIN=$(echo "$KVER" | cut -d. -f1,2)
    SRCPKG=linux-source-$MAJMIN
    # The source of the same Debian upload as the kernel, if apt still has it.
    IMGVER=$(dpkg-query -W -f='${Version}' "linux-image-$KVER" 2>/dev/null || true)
    BUILD=$(mktemp -d "${TMPDIR:-/tmp}/remapsim-dust.XXXXXX")
    trap 'rm -rf "$BUILD"' EXIT
    DL_OPTS=(-o APT::Sandbox::User=root)   # the _apt user could not write to $BUILD
    say "downloading $SRCPKG${IMGVER:+ $IMGVER} (~140 MB) for drivers/md/dm-dust.c"
    ( cd "$BUILD" && { { [ -n "$IMGVER" ] && apt-get -q "${DL_OPTS[@]}" download "$SRCPKG=$IMGVER"; } \
        || { apt_update_once; apt-get -q "${DL_OPTS[@]}" download "$SRCPKG"; }; } ) >>"$APT_LOG" 2>&1 \
      || { tail -n 5 "$APT_LOG" >&2; die "cannot download $SRCPKG with apt-get (full log: $APT_LOG)"; }
    DEB=$(ls "$BUILD"/"$SRCPKG"_*.deb | head -n 1)
    mkdir "$BUILD/mod"
    # --occurrence=1 stops tar at the file, before decompressing the rest;
    # the writers upstream then die of SIGPIPE, so judge by the file.
    ( dpkg-deb --fsys-tarfile "$DEB" | tar -xO "./usr/src/$SRCPKG.tar.xz" | xz -dc \
        | tar -x -C "$BUILD/mod" --strip-components=3 --occurrence=1 "$SRCPKG/drivers/md/dm-dust.c" ) 2>/dev/null || true
    [ -s "$BUILD/mod/dm-dust.c" ] || die "drivers/md/dm-dust.c not found in $DEB"
    rm -f "$DEB"
    echo 'obj-m := dm-dust.o' > "$BUILD/mod/Kbuild"
    make -C "$MODDIR/build" M="$BUILD/mod" modules >"$BUILD/make.log" 2>&1 \
      || { tail -n 20 "$BUILD/make.log" >&2; die "building dm-dust.ko against $MODDIR/build failed"; }
    cp "$BUILD/mod/dm-dust.ko" "$DUST.tmp" && mv -f "$DUST.tmp" "$DUST"
    echo "$KVER" > "$VM_DIR/dm-dust.kver"
    rm -rf "$BUILD"; trap - EXIT
    step_done "built dm-dust.ko"
  fi
else
  rm -f "$DUST" "$VM_DIR/dm-dust.kver"
fi

# ------------------------------------------------------------------ 3. dm-remap-v4
# The system under test: built unchanged from a writable copy of its source
# (the source folder may be read-only). A missing or broken source is one
# line, not a failed setup: the rest of the lane runs without the module.
DMR_KO=$VM_DIR/dm-remap.ko
DMR_NOTE=$VM_DIR/dm-remap.note
dmr_absent() {
  rm -f "$DMR_KO" "$VM_DIR/dm-remap.stamp"
  echo "$1" > "$DMR_NOTE"
  say "dm-remap-v4: $1"
  step_done "no dm-remap.ko: the kernel-lane tests that need the real module will skip"
}
if [ ! -f "$DMR_SRC/src/Makefile" ]; then
  dmr_absent "no module source at $DMR_SRC (set REMAPSIM_DM_REMAP_SRC to a dm-remap checkout)"
else
  DMR_SRC=$(cd "$DMR_SRC" && pwd -P)
  DMR_STAMP="$KVER $(cd "$DMR_SRC" && find . -type f \( -name '*.c' -o -name '*.h' -o -name Makefile \) -print0 | LC_ALL=C sort -z | xargs -0 cat | cksum)"
  if [ "$FORCE" = 0 ] && [ -f "$DMR_KO" ] && [ "$(cat "$VM_DIR/dm-remap.stamp" 2>/dev/null)" = "$DMR_STAMP" ]; then
    step_done "dm-remap.ko up to date ($DMR_SRC)"
  else
    B=$VM_DIR/dm-remap-build
    rm -rf "$B" && cp -r "$DMR_SRC" "$B" && chmod -R u+w "$B"
    # PWD= on make's command line: src/Makefile takes its include path from $(shell pwd),
    # which kbuild would otherwise evaluate inside the kernel tree
    if make -C "$B/src" BUILD_MODE=INTEGRATED KDIR="$MODDIR/build" PWD="$B/src" >"$VM_DIR/dm-remap-build.log" 2>&1 \
        && [ -f "$B/src/dm-remap.ko" ]; then
      cp "$B/src/dm-remap.ko" "$DMR_KO.tmp" && mv -f "$DMR_KO.tmp" "$DMR_KO"
      echo "$DMR_STAMP" > "$VM_DIR/dm-remap.stamp"
      echo "built from $DMR_SRC against $KVER" > "$DMR_NOTE"
      rm -rf "$B"
      step_done "built dm-remap.ko from $DMR_SRC"
    else
      tail -n 5 "$VM_DIR/dm-remap-build.log" >&2
      dmr_absent "building $DMR_SRC against $KVER failed (log: $VM_DIR/dm-remap-build.log)"
    fi
  fi
fi

# ------------------------------------------------------------------ 4. initramfs
norm() { local m=${1//-/_}; echo "${m%%.ko*}"; }
# Paths (relative to $MODDIR) of the given modules and all they depend on.
module_closure() {
  awk -v want="$*" '
    function base(p) { sub(/.*\//, "", p); sub(/\.ko.*$/, "", p); gsub(/-/, "_", p); return p }
    BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) { x = w[i]; gsub(/-/, "_", x); need[x] = 1 } }
    { p = $1; sub(/:$/, "", p); m = base(p); path[m] = p; deps[m] = ""
      for (i = 2; i <= NF; i++) deps[m] = deps[m] " " base($i) }
    END {
      do { grew = 0
        for (m in need) if (m in deps) { k = split(deps[m], d, " ")
          for (i = 1; i <= k; i++) if (!(d[i] in need)) { need[d[i]] = 1; grew = 1 } }
      } while (grew)
      for (m in need) print (m in path) ? path[m] : "MISSING " m
    }' "$MODDIR/modules.dep"
}
is_module() { grep -q "/$(norm "$1" | sed 's/_/[-_]/g')\.ko" "$MODDIR/modules.dep"; }

BOOT_MODULES="virtio_pci 9pnet_virtio 9p overlay"
# Loaded before every command (the kernel loads other dm targets on demand).
WANT_PRELOAD="loop dm-mod dm-linear dm-error dm-zero dm-flakey dm-delay dm-dust dm-bufio"
PRELOAD=""
for m in $WANT_PRELOAD; do is_module "$m" && PRELOAD="$PRELOAD $m"; done
PRELOAD=${PRELOAD# }

INPUTS="$KVER $(cksum < "$HERE/setup.sh") $(cksum < "$HERE/init.sh") $(cksum < /bin/busybox)"
[ -f "$DUST" ] && INPUTS="$INPUTS $(cksum < "$DUST")"
[ -f "$DMR_KO" ] && INPUTS="$INPUTS $(cksum < "$DMR_KO")"
if [ "$FORCE" = 0 ] && [ -f "$VM_DIR/initramfs.cpio.gz" ] && [ "$(cat "$VM_DIR/stamp" 2>/dev/null)" = "$INPUTS" ]; then
  step_done "initramfs up to date"
else
  T=$(mktemp -d "$VM_DIR/.build.XXXXXX")
  trap 'rm -rf "$T"' EXIT
  R=$T/root
  mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,etc,ctl,host,rw,newroot,extra,tmp} "$R/lib/modules/$KVER"
  cp /bin/busybox "$R/bin/busybox"
  while read -r app; do
    [ -e "$R/$app" ] || ln -s /bin/busybox "$R/$app"
  done < <(/bin/busybox --list-full)
  mapfile -t files < <(module_closure $BOOT_MODULES)
  for f in "${files[@]}"; do
    case "$f" in MISSING*)
      m=${f#MISSING }
      grep -q "/$(echo "$m" | sed 's/_/[-_]/g')\.ko" "$MODDIR/modules.builtin" && continue
      die "kernel $KVER has no module $m (needed to boot the VM)" ;;
    esac
    mkdir -p "$R/lib/modules/$KVER/$(dirname "$f")"
    cp "$MODDIR/$f" "$R/lib/modules/$KVER/$f"
  done
  cp "$MODDIR"/modules.{dep,alias,builtin,order} "$R/lib/modules/$KVER/" 2>/dev/null || true
  [ -f "$DUST" ] && cp "$DUST" "$R/extra/"
  # loaded after dm-dust.ko (init.sh takes /extra in name order), once dm-bufio is in
  [ -f "$DMR_KO" ] && cp "$DMR_KO" "$R/extra/"
  echo "$KVER" > "$R/etc/kver"
  echo "$BOOT_MODULES" > "$R/etc/boot-modules"
  echo "$PRELOAD" > "$R/etc/preload-modules"
  install -m 755 "$HERE/init.sh" "$R/init"
  ( cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet ) \
    | gzip -6 > "$T/initramfs.cpio.gz"

  cp "/boot/vmlinuz-$KVER" "$T/vmlinuz"
  # qemu can boot an uncompressed ELF vmlinux through its PVH entry point,
  # which skips the firmware's real-mode path and the in-guest decompression
  # (about 3 s per boot under TCG). Extract it when the kernel supports PVH.
  if grep -q '^CONFIG_PVH=y' "/boot/config-$KVER" 2>/dev/null; then
    for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "/boot/vmlinuz-$KVER" | cut -d: -f1); do
      # xz stops after its stream; tail then dies of SIGPIPE, so judge by the output
      { tail -c +$((off + 1)) "/boot/vmlinuz-$KVER" | xz -dc --single-stream > "$T/vmlinux"; } 2>/dev/null || true
      if [ "$(head -c 4 "$T/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
        break
      fi
      rm -f "$T/vmlinux"
    done
  fi
  rm -f "$VM_DIR/vmlinux"
  echo "$KVER" > "$T/kver"
  echo "$INPUTS" > "$T/stamp"
  for f in vmlinuz vmlinux initramfs.cpio.gz kver stamp; do
    [ -f "$T/$f" ] && mv -f "$T/$f" "$VM_DIR/$f"
  done
  rm -rf "$T"; trap - EXIT
  step_done "built initramfs ($(du -k "$VM_DIR/initramfs.cpio.gz" | cut -f1) KiB; preload: $PRELOAD)$([ -f "$VM_DIR/vmlinux" ] && echo '; vmlinux for PVH boot')"
fi

say "ready in $VM_DIR (total $(elapsed "$T_ALL"))"
