#!/usr/bin/env bash
# ctest entry: mounts tempfs (in the mode given) over a fresh store and runs
# the independent POSIX suites (scripts/lib/posix-suite.sh) on the mount.
# Usage: posix_suite.sh TEMPFS_BIN WORKDIR [tempfs mount options...]
set -euo pipefail
bin=$1 workdir=$2
shift 2
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ "$(id -u)" -ne 0 ] || [ ! -e /dev/fuse ]; then
  echo "SKIP: needs root and /dev/fuse"; exit 77
fi
tmp=$(mktemp -d /tmp/tempfs-posix.XXXXXX)
cleanup() {
  "$bin" umount "$tmp/mnt" 2>/dev/null || umount -l "$tmp/mnt" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/store" "$tmp/mnt" "$workdir"
"$bin" mount --store "$tmp/store" "$@" "$tmp/mnt"
grep 'serving in' "$tmp/store/tempfs.log" || true
bash "$root/scripts/lib/posix-suite.sh" "$tmp/mnt" "$workdir"
