#!/usr/bin/env bash
# Provide libfuse >= 3.17 (Debian 12 ships 3.14) without touching /usr.
#
# Usage: scripts/lib/libfuse.sh PREFIX                  (run as root)
#        scripts/lib/libfuse.sh --fetch-source DIR     (only fetch + unpack the
#          patched trixie fuse3 source tree into DIR, idempotent; used by
#          scripts/lib/posix-suite.sh to build libfuse's test_syscalls)
#
# If `pkg-config --atleast-version=3.17 fuse3` already holds system-wide, or
# PREFIX already holds a complete libfuse >= 3.17, this is a fast no-op.
# Otherwise it fetches Debian 13 (trixie)'s `fuse3` source package with apt,
# using a temporary sources list plus temporary apt state and cache
# directories (the machine's apt configuration and lists are left alone),
# builds the library with meson and installs it into PREFIX.
#
# The mirror is derived at run time from the machine's apt configuration
# (the entry that serves "bookworm main"); no host name is written here.
#
# Output: progress lines go to stderr; the LAST (only) stdout line is the
# pkg-config directory to put on PKG_CONFIG_PATH.  The same path is written
# to PREFIX/pkgconfig-dir and the library directory to PREFIX/lib-dir
# (binaries linked against it need an rpath or LD_LIBRARY_PATH to it).
set -euo pipefail

MIN_VERSION=3.17
SUITE=trixie
SRC_PKG=fuse3
DEFAULT_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

log() { printf '[libfuse] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

MODE=install
if [ $# -eq 2 ] && [ "$1" = --fetch-source ] && [ -n "$2" ]; then
  MODE=fetch-source
  SRC_DEST=$(realpath -m -- "$2")
elif [ $# -eq 1 ] && [ -n "$1" ] && [ "${1#-}" = "$1" ]; then
  PREFIX=$(realpath -m -- "$1")
  case "$PREFIX" in
    /|/usr|/usr/*) die "refusing to install into $PREFIX" ;;
  esac
else
  die "usage: $0 PREFIX | $0 --fetch-source DIR"
fi

# Record where the pkg-config file / library live and print the pc dir.
finish() { # $1 = pkgconfig dir, $2 = lib dir
  mkdir -p "$PREFIX"
  printf '%s\n' "$1" > "$PREFIX/pkgconfig-dir"
  printf '%s\n' "$2" > "$PREFIX/lib-dir"
  printf '%s\n' "$1"
}

# PREFIX holds a usable libfuse >= MIN_VERSION? Prints its pkgconfig dir.
prefix_pcdir() {
  local pc dir libdir
  for pc in "$PREFIX"/lib*/pkgconfig/fuse3.pc "$PREFIX"/lib/*/pkgconfig/fuse3.pc; do
    [ -f "$pc" ] || continue
    dir=${pc%/fuse3.pc}
    PKG_CONFIG_LIBDIR="$dir" PKG_CONFIG_PATH="" \
      pkg-config --atleast-version="$MIN_VERSION" fuse3 2>/dev/null || continue
    libdir=$(PKG_CONFIG_LIBDIR="$dir" PKG_CONFIG_PATH="" pkg-config --variable=libdir fuse3)
    compgen -G "$libdir/libfuse3.so.*" >/dev/null || continue
    [ -f "$PREFIX/include/fuse3/fuse_lowlevel.h" ] || continue
    printf '%s\n' "$dir"
    return 0
  done
  return 1
}

# ---------------------------------------------------------------- fast path
if [ "$MODE" = fetch-source ] && [ -f "$SRC_DEST/.fetched" ]; then
  log "source already unpacked in $SRC_DEST ($(cat "$SRC_DEST/.fetched"))"
  exit 0
fi
if [ "$MODE" = install ] && command -v pkg-config >/dev/null 2>&1; then
  if pkg-config --atleast-version="$MIN_VERSION" fuse3 2>/dev/null; then
    log "system fuse3 $(pkg-config --modversion fuse3) >= $MIN_VERSION, nothing to do"
    finish "$(pkg-config --variable=pcfiledir fuse3)" "$(pkg-config --variable=libdir fuse3)"
    exit 0
  fi
  if dir=$(prefix_pcdir); then
    v=$(PKG_CONFIG_LIBDIR="$dir" PKG_CONFIG_PATH="" pkg-config --modversion fuse3)
    log "fuse3 $v already installed in $PREFIX, nothing to do"
    finish "$dir" "$(PKG_CONFIG_LIBDIR="$dir" PKG_CONFIG_PATH="" pkg-config --variable=libdir fuse3)"
    exit 0
  fi
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (installs build dependencies with apt-get)"
export DEBIAN_FRONTEND=noninteractive

# ------------------------------------------------------- build dependencies
need=()
command -v meson >/dev/null 2>&1       || need+=(meson)
command -v ninja >/dev/null 2>&1       || need+=(ninja-build)
command -v pkg-config >/dev/null 2>&1  || need+=(pkg-config)
command -v cc >/dev/null 2>&1          || need+=(gcc)
[ -f /usr/include/stdio.h ]            || need+=(libc6-dev)
command -v dpkg-source >/dev/null 2>&1 || need+=(dpkg-dev)
command -v xz >/dev/null 2>&1          || need+=(xz-utils)
if [ ${#need[@]} -gt 0 ]; then
  log "installing build dependencies: ${need[*]}"
  if ! apt-get install -y -q --no-install-recommends "${need[@]}" >&2; then
    log "apt-get install failed; refreshing package lists and retrying"
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${need[@]}" >&2
  fi
fi

# ------------------------------------------------- derive the mirror's URI
# Prints "URI<TAB>KEYRING" of the first enabled `deb` source serving
# "bookworm" with component "main" (deb822 *.sources first, then one-line
# sources.list / *.list).
find_mirror() {
  local f hit
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    hit=$(awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && suites ~ /(^| )bookworm( |$)/ &&
            comps ~ /(^| )main( |$)/ && tolower(enabled) != "no" && uris != "") {
          split(uris, u, " "); printf "%s\t%s\n", u[1], signed; found = 1; exit
        }
        types = suites = comps = uris = signed = enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        line = $0; key = tolower(line); sub(/:.*/, "", key)
        val = line; sub(/^[^:]*:[ \t]*/, "", val); gsub(/[ \t]+/, " ", val)
        if (key == "types") types = val
        else if (key == "suites") suites = val
        else if (key == "components") comps = val
        else if (key == "uris") uris = val
        else if (key == "signed-by") signed = val
        else if (key == "enabled") enabled = val
      }
      END { if (!found) flush() }
    ' "$f")
    if [ -n "$hit" ]; then printf '%s\n' "$hit"; return 0; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    hit=$(awk '
      $1 != "deb" { next }
      {
        signed = ""; i = 2
        if ($2 ~ /^\[/) {                 # [ option=value ... ]
          while (i <= NF) {
            if ($i ~ /^\[?signed-by=/) { s = $i; sub(/^\[?signed-by=/, "", s); sub(/\]$/, "", s); signed = s }
            if ($i ~ /\]$/) { i++; break }
            i++
          }
        }
        uri = $i; suite = $(i + 1)
        if (suite != "bookworm") next
        for (j = i + 2; j <= NF; j++) if ($j == "main") { printf "%s\t%s\n", uri, signed; exit }
      }
    ' "$f")
    if [ -n "$hit" ]; then printf '%s\n' "$hit"; return 0; fi
  done
  return 0
}
mirror_line=$(find_mirror)
[ -n "$mirror_line" ] || die "no apt source serving 'bookworm main' found in /etc/apt"
MIRROR=${mirror_line%%$'\t'*}
KEYRING=${mirror_line#*$'\t'}
# Signed-By may be inline key material or empty: fall back to the archive keyring.
if [ -z "$KEYRING" ] || [ ! -f "$KEYRING" ]; then KEYRING=$DEFAULT_KEYRING; fi
[ -f "$KEYRING" ] || die "keyring $KEYRING missing (apt-get install debian-archive-keyring)"
log "mirror derived from apt config: $MIRROR (keyring $KEYRING)"

# -------------------------------------------- temporary apt state and fetch
WORK=$(mktemp -d /tmp/libfuse-build.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/src"
# Let apt's unprivileged downloader (_apt) write where it downloads.
if id _apt >/dev/null 2>&1; then
  chown _apt "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/src"
fi
printf 'deb-src [signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" "$SUITE" > "$WORK/sources.list"
# Read after /etc/apt/apt.conf.d, so it overrides: own lists/cache, no hooks.
cat > "$WORK/apt.conf" <<EOF
Dir::Etc::sourcelist "$WORK/sources.list";
Dir::Etc::sourceparts "/nonexistent";
Dir::State::Lists "$WORK/lists";
Dir::Cache "$WORK/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
EOF
tapt() { "$1" -c "$WORK/apt.conf" "${@:2}"; }

log "fetching $SUITE Sources index (temporary apt lists in $WORK)"
if ! upd=$(tapt apt-get update -q 2>&1) || grep -qE '^(E:|W: GPG error)' <<<"$upd"; then
  printf '%s\n' "$upd" >&2
  if grep -qiE 'NO_PUBKEY|signature|not signed|GPG error' <<<"$upd"; then
    die "signature check of $SUITE failed with $KEYRING (its Release is signed by the bookworm and trixie archive keys, both in Debian 12's debian-archive-keyring); run 'apt-get update && apt-get install debian-archive-keyring' and retry"
  fi
  die "apt-get update of the temporary $SUITE source list failed"
fi
ver=$(tapt apt-cache showsrc "$SRC_PKG" | awk '/^Version:/{print $2; exit}')
[ -n "$ver" ] || die "$SRC_PKG not found in $SUITE Sources"
log "downloading source $SRC_PKG $ver"
( cd "$WORK/src" && tapt apt-get source -qq --download-only "$SRC_PKG=$ver" >&2 )
dsc=$(ls "$WORK"/src/*.dsc)
# File checksums were verified by apt against the signed Sources index; the
# uploader's .dsc signature cannot be checked without debian-keyring.
log "unpacking $(basename "$dsc") (applying Debian patches)"
( cd "$WORK/src" && dpkg-source -q -x "$dsc" fuse3-src >/dev/null 2>&1 ) \
  || ( cd "$WORK/src" && dpkg-source -x "$dsc" fuse3-src >&2 )
SRC=$WORK/src/fuse3-src
printf '%s %s\n' "$SRC_PKG" "$ver" > "$SRC/.fetched"

if [ "$MODE" = fetch-source ]; then
  rm -rf "$SRC_DEST"
  mkdir -p "$(dirname "$SRC_DEST")"
  cp -a "$SRC" "$SRC_DEST"
  log "source $SRC_PKG $ver unpacked in $SRC_DEST"
  exit 0
fi

# ---------------------------------------------------------- build, install
upstream=${ver%%-*}; upstream=${upstream#*:}
log "configuring libfuse $upstream with meson"
opts=(--prefix="$PREFIX" --libdir=lib --buildtype=release -Ddefault_library=shared
      -Dexamples=false -Dtests=false -Dutils=false -Duseroot=false
      -Dinitscriptdir= -Dudevrulesdir="$PREFIX/lib/udev/rules.d")
meson setup "$WORK/build" "$SRC" "${opts[@]}" >"$WORK/meson-setup.log" 2>&1 \
  || { cat "$WORK/meson-setup.log" >&2; die "meson setup failed"; }
log "building"
ninja -C "$WORK/build" >"$WORK/ninja.log" 2>&1 \
  || { cat "$WORK/ninja.log" >&2; die "build failed"; }
log "installing into $PREFIX"
rm -rf "$PREFIX/lib/pkgconfig/fuse3.pc"
meson install -C "$WORK/build" --no-rebuild >"$WORK/install.log" 2>&1 \
  || { cat "$WORK/install.log" >&2; die "meson install failed"; }

dir=$(prefix_pcdir) || die "installed tree in $PREFIX does not provide fuse3 >= $MIN_VERSION"
libdir=$(PKG_CONFIG_LIBDIR="$dir" PKG_CONFIG_PATH="" pkg-config --variable=libdir fuse3)
log "done: fuse3 $(PKG_CONFIG_LIBDIR="$dir" PKG_CONFIG_PATH="" pkg-config --modversion fuse3); PKG_CONFIG_PATH=$dir; lib dir $libdir (needs rpath or LD_LIBRARY_PATH)"
finish "$dir" "$libdir"
