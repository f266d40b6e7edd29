#!/usr/bin/env bash
# Builds the optional native I/O library: native/remapsim_io.c ->
# native/build/libremapsim_io.so, with the system C compiler (CC, default gcc).
# Needs only gcc and libc6-dev (which brings linux-libc-dev and so
# <linux/io_uring.h>); liburing is not used. Run: npm run build:native
set -euo pipefail
cd "$(dirname "$0")/.."

CC=${CC:-gcc}
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "build-native: C compiler '$CC' not found (apt-get install gcc libc6-dev); the JavaScript I/O path will be used" >&2
  exit 3
fi

src=native/remapsim_io.c
out=native/build/libremapsim_io.so
mkdir -p native/build
# Build next to the target and rename, so a process loading the library never sees a half-written file.
tmp=$(mktemp native/build/.libremapsim_io.XXXXXX.so)
trap 'rm -f "$tmp"' EXIT
"$CC" -std=gnu11 -O2 -fPIC -shared -Wall -Wextra -Werror -fvisibility=default -o "$tmp" "$src"
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
echo "build-native: built $out ($("$CC" -dumpfullversion -dumpversion 2>/dev/null | head -1 || true))"
