#!/bin/sh
# Runs the kernel's checkpatch.pl on the given files. Debian ships it only
# inside the kernel source package (linux-source-*), so the script is taken
# from there once (apt-get download, never installed) and cached.
set -eu
cache=${TOASIM_CACHE:-/var/cache/toasim}/checkpatch
script=$cache/scripts/checkpatch.pl
if [ ! -f "$script" ]; then
  pkg=$(apt-cache search --names-only '^linux-source-[0-9.]+$' | sort -V | tail -1 | cut -d' ' -f1)
  [ -n "$pkg" ] || { echo "checkpatch: no linux-source package in the apt sources" >&2; exit 1; }
  echo "checkpatch: fetching scripts/checkpatch.pl from $pkg (once)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1) ||
    { echo "checkpatch: apt-get download $pkg failed" >&2; exit 1; }
  mkdir -p "$tmp/src"
  dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -O --wildcards './usr/src/linux-source-*.tar.xz' |
    xz -dc | tar -x -C "$tmp/src" --strip-components=1 --wildcards \
      '*/scripts/checkpatch.pl' '*/scripts/const_structs.checkpatch' '*/scripts/spelling.txt' 2>/dev/null || true
  [ -f "$tmp/src/scripts/checkpatch.pl" ] || { echo "checkpatch: not found in $pkg" >&2; exit 1; }
  mkdir -p "$cache"
  rm -rf "$cache/scripts.new" && mv "$tmp/src/scripts" "$cache/scripts.new" && mv "$cache/scripts.new" "$cache/scripts"
fi
exec perl "$script" --no-tree --strict --show-types --quiet --ignore SPDX_LICENSE_TAG -f "$@"
