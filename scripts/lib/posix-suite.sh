#!/usr/bin/env bash
# Run independent POSIX filesystem conformance tests against a directory
# (normally a tempfs mount point), as root.
#
# Usage: scripts/lib/posix-suite.sh DIR_TO_TEST WORKDIR
#
# pjdfstest is not packaged by Debian (12 or 13) nor on npm, so it cannot be
# obtained here.  This runs two independent suites that can be:
#
#  syscalls  libfuse's test/test_syscalls.c (59 cases: create, unlink, link,
#            symlink, mknod, mkfifo, mkdir, rename incl. dir loops, seekdir,
#            sockets, utime, truncate/ftruncate, open flag/mode matrix,
#            O_CREAT in read-only dirs, copy_file_range, O_TMPFILE, and with
#            -u: I/O on open-but-unlinked files).  Built from Debian 13's fuse3
#            source package, fetched by scripts/lib/libfuse.sh --fetch-source.
#  python    CPython's own regression tests for the os/posix/shutil/stat/io
#            layers (Debian's libpythonX.Y-testsuite), run with cwd and
#            TMPDIR inside DIR_TO_TEST, so every file they touch is on it.
#
# Environment knobs:
#   POSIX_SUITE_PARTS       "syscalls python" (default) or a subset
#   POSIX_SUITE_PY_TESTS    CPython test modules (default: see PY_TESTS)
#   POSIX_SUITE_SYSCALLS_ARGS  extra test_syscalls args (default "-u";
#                           "-N" skips case N, e.g. "-u -53")
#   POSIX_SUITE_PY_TIMEOUT  per-module timeout in seconds (default 600)
#
# Output: per-suite results, then a last line "posix-suite: N passed,
# N failed, N skipped".  Exit status 0 only when nothing failed.
# Logs are kept in WORKDIR/logs/.
set -euo pipefail
shopt -s inherit_errexit

log() { printf '[posix-suite] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

[ $# -eq 2 ] || die "usage: $0 DIR_TO_TEST WORKDIR"
[ "$(id -u)" -eq 0 ] || die "must run as root"
TARGET=$(realpath -e -- "$1") || die "no such directory: $1"
[ -d "$TARGET" ] || die "not a directory: $TARGET"
WORKDIR=$(realpath -m -- "$2")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$WORKDIR/logs"
export DEBIAN_FRONTEND=noninteractive

PARTS=${POSIX_SUITE_PARTS:-syscalls python}
PY_TESTS=${POSIX_SUITE_PY_TESTS:-test_os test_posix test_shutil test_stat \
test_fileio test_file test_tempfile test_pathlib test_glob test_genericpath \
test_posixpath test_fcntl test_mmap test_filecmp}
SYSCALLS_ARGS=${POSIX_SUITE_SYSCALLS_ARGS:--u}
PY_TIMEOUT=${POSIX_SUITE_PY_TIMEOUT:-600}

total_pass=0 total_fail=0 total_skip=0
add() { total_pass=$((total_pass + $1)); total_fail=$((total_fail + $2)); total_skip=$((total_skip + $3)); }

# Fresh scratch directory inside the tested tree.
scratch() {
  local d="$TARGET/.posix-suite-$1"
  rm -rf "$d" && mkdir -m 0755 "$d" || return 1
  printf '%s\n' "$d"
}
# A part that cannot even start (dead mount...) counts as one failure.
cannot_start() { echo "$1: 0 passed, 1 failed (cannot create scratch directory in $TARGET)"; add 0 1 0; }

# ------------------------------------------------- libfuse test_syscalls
run_syscalls() {
  local bin="$WORKDIR/bin/test_syscalls" src="$WORKDIR/fuse3-src" build="$WORKDIR/build-tests"
  if [ ! -x "$bin" ]; then
    log "preparing libfuse test_syscalls"
    "$HERE/libfuse.sh" --fetch-source "$src"
    rm -rf "$build"
    meson setup "$build" "$src" --buildtype=release -Dtests=true -Dexamples=false \
      -Dutils=false -Duseroot=false -Dinitscriptdir= >"$WORKDIR/logs/meson-setup.log" 2>&1 \
      || { cat "$WORKDIR/logs/meson-setup.log" >&2; die "meson setup failed"; }
    ninja -C "$build" test/test_syscalls >"$WORKDIR/logs/ninja.log" 2>&1 \
      || { cat "$WORKDIR/logs/ninja.log" >&2; die "building test_syscalls failed"; }
    mkdir -p "$WORKDIR/bin"
    install -m 0755 "$build/test/test_syscalls" "$bin"
  fi

  local dir out rc=0 pass fail=0 n
  dir=$(scratch syscalls) || { cannot_start test_syscalls; return 0; }
  out="$WORKDIR/logs/test_syscalls.log"
  log "running test_syscalls $SYSCALLS_ARGS in $dir"
  # shellcheck disable=SC2086
  "$bin" "$dir" $SYSCALLS_ARGS >"$out" 2>&1 || rc=$?
  pass=$(grep -c ' OK$' "$out" || true)
  n=$(sed -n 's/^\([0-9]*\) tests failed$/\1/p' "$out" | tail -n1); fail=$((fail + ${n:-0}))
  n=$(sed -n 's/^\([0-9]*\) unlinked testfile checks failed$/\1/p' "$out" | tail -n1); fail=$((fail + ${n:-0}))
  if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi   # crashed / aborted
  if [ "$fail" -gt 0 ]; then
    echo "--- test_syscalls problems:"
    grep -v ' OK$' "$out" | head -n 60 || true
  fi
  echo "test_syscalls: $pass passed, $fail failed (exit $rc; log $out)"
  add "$pass" "$fail" 0
  rm -rf "$dir" 2>/dev/null || true
}

# ------------------------------------------- CPython regression tests
run_python() {
  local py=/usr/bin/python3 ver pkg
  command -v "$py" >/dev/null 2>&1 || { apt-get install -y -q --no-install-recommends python3 >&2; }
  ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  pkg="libpython$ver-testsuite"
  if [ ! -f "/usr/lib/python$ver/test/test_os.py" ]; then
    log "installing $pkg"
    if ! apt-get install -y -q --no-install-recommends "$pkg" >&2; then
      apt-get update -q >&2
      apt-get install -y -q --no-install-recommends "$pkg" >&2
    fi
  fi

  local dir xml out rc=0 counts
  dir=$(scratch python) || { cannot_start "python$ver tests"; return 0; }
  xml="$WORKDIR/logs/python-tests.xml"
  out="$WORKDIR/logs/python-tests.log"
  rm -f "$xml"
  log "running CPython $ver tests in $dir: $PY_TESTS"
  # shellcheck disable=SC2086
  ( cd "$dir" && TMPDIR="$dir" HOME="$dir" "$py" -m test --timeout "$PY_TIMEOUT" \
      --junit-xml "$xml" $PY_TESTS ) >"$out" 2>&1 || rc=$?
  counts=$("$py" - "$xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
p = f = s = 0
bad = []
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 0 0"); sys.exit()
for tc in root.iter("testcase"):
    kinds = {c.tag for c in tc}
    if kinds & {"failure", "error"}:
        f += 1; bad.append(tc.get("name", "?"))
    elif "skipped" in kinds:
        s += 1
    else:
        p += 1
print(p, f, s)
for b in bad[:60]:
    print(b)
EOF
)
  local pass fail skip
  read -r pass fail skip <<<"$(head -n1 <<<"$counts")"
  # A module that crashed or timed out yields no test cases in the XML.
  if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
  if [ "$fail" -gt 0 ]; then
    echo "--- CPython test problems:"
    tail -n +2 <<<"$counts"
    grep -E '^(test_[a-z_]+ (failed|crashed)|[0-9]+ tests? failed|    test_|Tests result)' "$out" | head -n 20 || true
  fi
  echo "python$ver tests: $pass passed, $fail failed, $skip skipped (exit $rc; log $out)"
  add "$pass" "$fail" "$skip"
  rm -rf "$dir" 2>/dev/null || true
}

log "target $TARGET ($(findmnt -n -o FSTYPE -T "$TARGET" 2>/dev/null || stat -f -c %T "$TARGET")), workdir $WORKDIR, parts: $PARTS"
for part in $PARTS; do
  case "$part" in
    syscalls) run_syscalls ;;
    python)   run_python ;;
    *) die "unknown part '$part' (use: syscalls python)" ;;
  esac
done

echo "posix-suite: $total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
