#!/usr/bin/env bash
# Benchmarks tempfs's cluster mode on loopback: remote reads between two
# nodes against a raw TCP copy of the same bytes and against sshfs.
#
# Usage: tests/bench/cluster_bench.sh [--quick] [--reps N] [--out DIR]
#                                     [--size-mib N] [--files N] [--build]
#        (as root)
#
# Setup (all under one temporary directory, removed on exit): a private tmpfs
# holding both node stores and every data file of the run; a redis-server on
# a free loopback port (no persistence); node A and node B (tempfs cluster
# mode, peer servers on free loopback ports, one secret); a loopback sshd on
# a free port (its own config file, throwaway host and client keys, nothing
# in /etc/ssh or ~/.ssh used or changed) and an sshfs mount of A's tempfs
# mount directory. Missing Debian packages are installed with apt-get
# (redis-server sshfs openssh-server openssh-client python3); during that
# install a temporary policy-rc.d keeps the packages from starting system
# services (no sshd on port 22, no redis on 6379).
#
# Each repetition (the order of the targets rotates from rep to rep, so all
# of them share the machine's noise):
#   tempfs-first   A writes a NEW file (random bytes, SIZE); B reads it once
#                  (1 MiB reads, open to EOF): fetched from A over TCP
#                  (1 MiB frames, each with its GMAC tag, checked on
#                  arrival), hashed (xxHash64), stored in B's store.
#                  B's own fetch time ("fetched inode ... in T ms" in
#                  B's log) is recorded too.
#   raw-tcp-tmpfs  baseline: the same bytes (A's store data file of that
#                  file) sent with socket.sendfile over loopback TCP by one
#                  python3 process, received by another (recv_into 1 MiB)
#                  that WRITES them to a file on the same tmpfs (tempfs must
#                  store its copy too; no hashing). Ratio tempfs/raw per rep.
#   raw-tcp-null   the same, receiver discards the bytes (reference).
#   tempfs-second  B reads the file again once the fetch is complete: local
#                  (kernel passthrough to B's copy).
#   a-store        the same read directly from A's store data file.
#   sshfs-first    A writes another NEW file (same size); it is read once
#                  through the sshfs mount of A's tempfs mount (first read:
#                  new file, nothing cached by sshfs or the kernel).
#   small-tempfs   A writes FILES new 4 KiB files in a new directory; B
#                  opens+reads+closes each (python3, perf_counter per file;
#                  includes the lookup of the name): p50 and p99.
#   small-sshfs    the same through sshfs, on another new directory.
# Sizes: SIZE 1024 MiB, FILES 1000, 3 reps; --quick: 128 MiB, 300 files,
# 1 rep (about a minute). MB/s = 10^6 bytes per second.
#
# Output: a table (median, min-max over reps) on stdout; OUT/cluster.csv
# (summary), OUT/cluster-raw.csv (every measurement), OUT/cluster.md (table
# and machine); OUT/cluster-logs/ (daemon logs). Default OUT: build/bench.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

reps=3 quick=0 out=build/bench size_mib="" nfiles="" build=0 reps_set=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --reps) [ $# -ge 2 ] || usage 2; reps=$2; reps_set=1; shift 2 ;;
    --reps=*) reps=${1#--reps=}; reps_set=1; shift ;;
    --out) [ $# -ge 2 ] || usage 2; out=$2; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    --size-mib) [ $# -ge 2 ] || usage 2; size_mib=$2; shift 2 ;;
    --files) [ $# -ge 2 ] || usage 2; nfiles=$2; shift 2 ;;
    --build) build=1; shift ;;
    -h|--help) usage 0 ;;
    *) printf 'unknown argument: %s\n' "$1" >&2; usage 2 ;;
  esac
done
if [ "$quick" -eq 1 ]; then
  : "${size_mib:=128}" "${nfiles:=300}"
  [ "$reps_set" -eq 1 ] || reps=1
else
  : "${size_mib:=1024}" "${nfiles:=1000}"
fi
for v in reps size_mib nfiles; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "--${v//_/-} needs a positive integer"
done
[ "$reps" -le 20 ] || die "--reps: at most 20"
[ "$(id -u)" -eq 0 ] || die "run as root (mounts, sshd, packages)"
size=$((size_mib * 1024 * 1024))

# --- packages --------------------------------------------------------------
policy_rc=""
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy_rc=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$policy_rc"; chmod 755 "$policy_rc"
  fi
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -q >/dev/null
  timeout 900 apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$policy_rc" ]; then rm -f "$policy_rc"; policy_rc=""; fi
}
trap '[ -n "$policy_rc" ] && rm -f "$policy_rc"' EXIT
ensure_packages redis-server redis-tools sshfs openssh-server openssh-client python3 fuse3
trap - EXIT
py=/usr/bin/python3
sshd_bin=/usr/sbin/sshd
sftp_server=/usr/lib/openssh/sftp-server
[ -x "$sftp_server" ] || die "no $sftp_server"
if [ "$build" -eq 1 ] || [ ! -x build/bin/tempfs ]; then
  log "building tempfs (scripts/build)"
  bash scripts/build >&2
fi
tempfs=$root/build/bin/tempfs

# --- memory check ------------------------------------------------------------
# The tmpfs holds: B's copies of every rep's big file (copies of deleted
# files stay until evicted), A's current big file, one more (receiver copy
# or sshfs file), and the small files.
tmpfs_mib=$(( (reps + 3) * size_mib + 512 ))
avail_mib=$(awk '/^MemAvailable:/ {print int($2/1024)}' /proc/meminfo)
# Page caches above the mounts (B's FUSE pages, sshfs pages) need about two
# more copies; keep 1 GiB spare on top.
need_mib=$(( tmpfs_mib + 2 * size_mib + 1024 ))
[ "$avail_mib" -ge "$need_mib" ] || die "needs about $need_mib MiB of available memory, $avail_mib MiB available (try --size-mib or --reps)"

# --- temporary directory and cleanup ---------------------------------------
work=$(mktemp -d /tmp/tempfs-cluster-bench.XXXXXX)
fs=$work/tmpfs
mnt_a=$work/mnt/a mnt_b=$work/mnt/b mnt_s=$work/mnt/sshfs
mkdir -p "$fs" "$mnt_a" "$mnt_b" "$mnt_s" "$work/redis" "$work/ssh"
sshd_pid="" made_run_sshd=0 cleaned=0
cleanup() {
  [ "$cleaned" -eq 1 ] && return 0
  cleaned=1
  set +e
  if mountpoint -q "$mnt_s" 2>/dev/null; then
    timeout 20 fusermount3 -u "$mnt_s" 2>/dev/null || timeout 20 fusermount -u "$mnt_s" 2>/dev/null || umount -l "$mnt_s"
  fi
  if [ -n "$sshd_pid" ]; then
    kill "$sshd_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$sshd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$sshd_pid" 2>/dev/null
  fi
  [ "$made_run_sshd" -eq 1 ] && rmdir /run/sshd 2>/dev/null
  for m in "$mnt_b" "$mnt_a"; do
    if mountpoint -q "$m" 2>/dev/null || grep -q " $m " /proc/mounts; then
      timeout 30 "$tempfs" umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    fi
  done
  if [ -f "$work/redis/pid" ]; then
    rpid=$(cat "$work/redis/pid")
    kill "$rpid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
  fi
  # Keep the daemon logs before the tmpfs goes.
  if [ -n "${logdir:-}" ] && [ -d "$logdir" ]; then
    for n in a b; do [ -f "$fs/$n/store/tempfs.log" ] && cp "$fs/$n/store/tempfs.log" "$logdir/node-$n.log"; done
    [ -f "$work/ssh/sshd.log" ] && cp "$work/ssh/sshd.log" "$logdir/sshd.log"
  fi
  if mountpoint -q "$fs" 2>/dev/null; then
    umount "$fs" 2>/dev/null || umount -l "$fs"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$out"
out=$(cd "$out" && pwd)
logdir=$out/cluster-logs
rm -rf "$logdir"; mkdir -p "$logdir"

log "private tmpfs of ${tmpfs_mib} MiB at $fs"
mount -t tmpfs -o "size=${tmpfs_mib}m,mode=0755" tempfs-cluster-bench "$fs"
mkdir -p "$fs/a/store" "$fs/b/store" "$fs/raw"

# --- python helper -----------------------------------------------------------
cat > "$work/helper.py" <<'EOF'
import os, socket, statistics, sys, time

BUF = 1 << 20

def read(path):
    buf = bytearray(BUF)
    mv = memoryview(buf)
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    total = 0
    while True:
        n = os.readv(fd, [mv])
        if n == 0:
            break
        total += n
    os.close(fd)
    dt = time.perf_counter() - t0
    print(total, f"{dt:.6f}")

def rawcopy(src, dest):
    # Two processes, as two nodes: the child sends, this one receives.
    size = os.path.getsize(src)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        try:
            ls.close()
            s = socket.create_connection(("127.0.0.1", port), timeout=120)
            with open(src, "rb") as f:
                s.sendfile(f)
            s.close()
        finally:
            os._exit(0)
    ls.settimeout(60)
    t0 = time.perf_counter()
    c, _ = ls.accept()
    c.settimeout(120)
    buf = bytearray(BUF)
    mv = memoryview(buf)
    out = None if dest == "-" else os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    total = 0
    while True:
        n = c.recv_into(mv)
        if n == 0:
            break
        if out is not None:
            done = 0
            while done < n:
                done += os.write(out, mv[done:n])
        total += n
    if out is not None:
        os.close(out)
    dt = time.perf_counter() - t0
    c.close()
    os.waitpid(pid, 0)
    if total != size:
        sys.exit(f"raw copy: received {total} of {size} bytes")
    print(total, f"{dt:.6f}")

def mkfiles(d, n, size):
    os.mkdir(d)
    for i in range(n):
        fd = os.open(os.path.join(d, f"f{i:05d}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, os.urandom(size))
        os.close(fd)

def smallread(d, n, size):
    lat, lat_open, lat_rest = [], [], []
    for i in range(n):
        p = os.path.join(d, f"f{i:05d}")
        t0 = time.perf_counter()
        fd = os.open(p, os.O_RDONLY)
        t1 = time.perf_counter()
        got = os.read(fd, 65536)
        os.close(fd)
        t2 = time.perf_counter()
        lat.append(t2 - t0)
        lat_open.append(t1 - t0)
        lat_rest.append(t2 - t1)
        if len(got) != size:
            sys.exit(f"{p}: read {len(got)} bytes, expected {size}")
    def pct(xs, q):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]
    # p50 p99 mean (open+read+close), then p50 of open alone and of read+close
    print(f"{pct(lat, 0.50)*1e6:.1f} {pct(lat, 0.99)*1e6:.1f} {statistics.mean(lat)*1e6:.1f} "
          f"{pct(lat_open, 0.50)*1e6:.1f} {pct(lat_rest, 0.50)*1e6:.1f}")

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])

def wait_port(port, seconds):
    end = time.time() + float(seconds)
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on port {port}")

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "read": read(*args)
elif cmd == "rawcopy": rawcopy(*args)
elif cmd == "mkfiles": mkfiles(args[0], int(args[1]), int(args[2]))
elif cmd == "smallread": smallread(args[0], int(args[1]), int(args[2]))
elif cmd == "free-port": free_port()
elif cmd == "wait-port": wait_port(*args)
else: sys.exit("unknown command " + cmd)
EOF
helper() { timeout 900 "$py" "$work/helper.py" "$@"; }

# --- redis and the two nodes -------------------------------------------------
rport=$(helper free-port); pa=$(helper free-port); pb=$(helper free-port); sport=$(helper free-port)
log "redis-server on 127.0.0.1:$rport"
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work/redis" \
  --daemonize yes --pidfile "$work/redis/pid" --logfile "$work/redis/log" >/dev/null
ok=0
for _ in $(seq 100); do
  if timeout 2 redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG; then ok=1; break; fi
  sleep 0.1
done
[ "$ok" -eq 1 ] || die "redis-server did not answer on port $rport"
head -c 32 /dev/urandom | base64 > "$work/secret"; chmod 600 "$work/secret"
node() { # name dir port
  timeout 60 "$tempfs" mount --store "$fs/$2/store" --meta "redis://127.0.0.1:$rport" --node-id "$1" \
    --listen "127.0.0.1:$3" --secret-file "$work/secret" "$work/mnt/$2"
}
log "mounting node A (peer port $pa) and node B (peer port $pb)"
node A a "$pa"
node B b "$pb"
node_mode() { sed -n 's/.*\(serving in .*\)/\1/p' "$fs/$1/store/tempfs.log" | head -1 || true; }
mode_a=$(node_mode a); mode_b=$(node_mode b)
log "node A: ${mode_a:-mode not logged}; node B: ${mode_b:-mode not logged}"
daemon_pid() { # store dir -> pid of the daemon serving it (for CPU accounting only)
  pgrep -f -- "--store $1( |$)" | head -1 || true
}
pid_a=$(daemon_pid "$fs/a/store"); pid_b=$(daemon_pid "$fs/b/store")
cpu_ticks() { # pid -> utime+stime in clock ticks (0 if unknown)
  if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then
    awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"
  else
    echo 0
  fi
}
hz=$(getconf CLK_TCK)

# --- sshd and sshfs ----------------------------------------------------------
ssh_dir=$work/ssh
ssh-keygen -q -t ed25519 -N '' -C tempfs-bench-host -f "$ssh_dir/host_key" >/dev/null
ssh-keygen -q -t ed25519 -N '' -C tempfs-bench-client -f "$ssh_dir/client_key" >/dev/null
cp "$ssh_dir/client_key.pub" "$ssh_dir/authorized_keys"
cat > "$ssh_dir/sshd_config" <<EOF
Port $sport
ListenAddress 127.0.0.1
HostKey $ssh_dir/host_key
PidFile $ssh_dir/sshd.pid
AuthorizedKeysFile $ssh_dir/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
X11Forwarding no
PrintMotd no
Subsystem sftp $sftp_server
EOF
if [ ! -d /run/sshd ]; then mkdir -m 755 /run/sshd; made_run_sshd=1; fi
log "sshd on 127.0.0.1:$sport (config, keys and pid under the bench's temporary directory)"
"$sshd_bin" -D -e -f "$ssh_dir/sshd_config" > "$ssh_dir/sshd.log" 2>&1 &
sshd_pid=$!
helper wait-port "$sport" 20 || { cat "$ssh_dir/sshd.log" >&2; die "sshd did not start"; }
ssh_opts=(-o "IdentityFile=$ssh_dir/client_key" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no
  -o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR
  -o ConnectTimeout=10)
timeout 30 ssh -F /dev/null -p "$sport" "${ssh_opts[@]}" root@127.0.0.1 true \
  || { cat "$ssh_dir/sshd.log" >&2; die "ssh login to the bench sshd failed"; }
log "sshfs: root@127.0.0.1:$mnt_a on $mnt_s (sshfs defaults)"
timeout 60 sshfs -p "$sport" "${ssh_opts[@]}" -F /dev/null "root@127.0.0.1:$mnt_a" "$mnt_s"
mountpoint -q "$mnt_s" || die "sshfs did not mount"
ssh_cipher=$(timeout 20 ssh -F /dev/null -p "$sport" "${ssh_opts[@]}" -v root@127.0.0.1 true 2>&1 \
  | sed -n 's/.*kex: server->client cipher: \([^ ]*\).*/\1/p' | head -1 || true)

# --- measurements ------------------------------------------------------------
raw=$out/cluster-raw.csv
echo "rep,metric,unit,value" > "$raw"
record() { echo "$1,$2,$3,$4" >> "$raw"; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }
write_big() { # path: a new file of SIZE random bytes, written on A (close publishes)
  timeout 600 head -c "$size" /dev/urandom > "$1"
}
redis_calls() { # commands redis-server has executed so far (INFO commandstats)
  timeout 10 redis-cli -p "$rport" info commandstats | awk -F'[=,:]' '/^cmdstat_/ && $3 == "calls" {s += $4} /^cmdstat_/ && $2 == "calls" {s += $3} END {print s + 0}'
}
store_file() { # store ino -> the store's data file
  printf '%s/data/%02x/%016x' "$1" $(( $2 & 0xff )) "$2"
}

wait_fetched() { # ino -> "bytes ms" from B's log, waits at most 120 s
  local line
  for _ in $(seq 1200); do
    line=$(grep -E "fetched inode $1 version [0-9]+ \([0-9]+ bytes\)" "$fs/b/store/tempfs.log" | tail -1 || true)
    if [ -n "$line" ]; then
      sed -E 's/.*\(([0-9]+) bytes\).* in ([0-9]+) ms.*/\1 \2/' <<<"$line"
      return 0
    fi
    grep -qE "fetch of inode $1 version" "$fs/b/store/tempfs.log" && die "fetch of inode $1 failed (see B's log)"
    sleep 0.1
  done
  die "no fetch of inode $1 in B's log after 120 s"
}

t_tempfs() { # rep
  local r=$1 name="big-$1" ino res bytes secs fb fms ca cb ca2 cb2
  log "rep $r: tempfs: A writes $name ($size_mib MiB), B reads it"
  write_big "$mnt_a/$name"
  ino=$(stat -c %i "$mnt_a/$name")
  ca=$(cpu_ticks "$pid_a"); cb=$(cpu_ticks "$pid_b")
  res=$(helper read "$mnt_b/$name"); read -r bytes secs <<<"$res"
  ca2=$(cpu_ticks "$pid_a"); cb2=$(cpu_ticks "$pid_b")
  [ "$bytes" -eq "$size" ] || die "B read $bytes of $size bytes of $name"
  record "$r" tempfs-first MB/s "$(mbps "$bytes" "$secs")"
  record "$r" tempfs-first-cpu-B "cpu s" "$(awk -v t=$((cb2 - cb)) -v h="$hz" 'BEGIN{printf "%.2f", t/h}')"
  record "$r" tempfs-first-cpu-A "cpu s" "$(awk -v t=$((ca2 - ca)) -v h="$hz" 'BEGIN{printf "%.2f", t/h}')"
  read -r fb fms <<<"$(wait_fetched "$ino")"
  [ "$fb" -eq "$size" ] || die "B's log: fetched $fb of $size bytes"
  record "$r" tempfs-fetch-daemon MB/s "$(mbps "$fb" "$(awk -v m="$fms" 'BEGIN{print (m > 0 ? m : 1) / 1000}')")"
  res=$(helper read "$mnt_b/$name"); read -r bytes secs <<<"$res"
  record "$r" tempfs-second MB/s "$(mbps "$bytes" "$secs")"
  local sf; sf=$(store_file "$fs/a/store" "$ino")
  [ -f "$sf" ] || die "A's store data file $sf missing"
  res=$(helper read "$sf"); read -r bytes secs <<<"$res"
  record "$r" a-store MB/s "$(mbps "$bytes" "$secs")"
  local n; n=$(grep -c "fetched inode $ino version" "$fs/b/store/tempfs.log" || true)
  [ "$n" -eq 1 ] || log "warning: $n fetches of inode $ino in B's log (second read not local?)"
}

t_raw() { # rep
  local r=$1 name="raw-$1" ino sf res bytes secs
  log "rep $r: raw TCP: A's store file of a new $size_mib MiB file, sendfile -> recv (tmpfs file, then /dev/null)"
  write_big "$mnt_a/$name"
  ino=$(stat -c %i "$mnt_a/$name")
  sf=$(store_file "$fs/a/store" "$ino")
  [ -f "$sf" ] || die "A's store data file $sf missing"
  res=$(helper rawcopy "$sf" "$fs/raw/recv.bin"); read -r bytes secs <<<"$res"
  record "$r" raw-tcp-tmpfs MB/s "$(mbps "$bytes" "$secs")"
  rm -f "$fs/raw/recv.bin"
  res=$(helper rawcopy "$sf" -); read -r bytes secs <<<"$res"
  record "$r" raw-tcp-null MB/s "$(mbps "$bytes" "$secs")"
  rm -f "$mnt_a/$name"
}

t_sshfs() { # rep
  local r=$1 name="sshfs-$1" res bytes secs
  log "rep $r: sshfs: A writes $name ($size_mib MiB), read through sshfs"
  write_big "$mnt_a/$name"
  res=$(helper read "$mnt_s/$name"); read -r bytes secs <<<"$res"
  [ "$bytes" -eq "$size" ] || die "sshfs read $bytes of $size bytes of $name"
  record "$r" sshfs-first MB/s "$(mbps "$bytes" "$secs")"
  rm -f "$mnt_a/$name"
}

t_small() { # rep target
  local r=$1 t=$2 d="small-$2-$1" p50 p99 mean open50 rest50 c0 c1
  log "rep $r: $t: A writes $nfiles files of 4 KiB in $d, then open+read+close each"
  helper mkfiles "$mnt_a/$d" "$nfiles" 4096
  if [ "$t" = tempfs ]; then
    c0=$(redis_calls)
    read -r p50 p99 mean open50 rest50 <<<"$(helper smallread "$mnt_b/$d" "$nfiles" 4096)"
    c1=$(redis_calls)
    record "$r" small-tempfs-redis-cmds "per file" "$(awk -v a="$c0" -v b="$c1" -v n="$nfiles" 'BEGIN{printf "%.1f", (b - a) / n}')"
  else
    read -r p50 p99 mean open50 rest50 <<<"$(helper smallread "$mnt_s/$d" "$nfiles" 4096)"
  fi
  record "$r" "small-$t-p50" us "$p50"
  record "$r" "small-$t-p99" us "$p99"
  record "$r" "small-$t-mean" us "$mean"
  record "$r" "small-$t-open-p50" us "$open50"
  record "$r" "small-$t-read-p50" us "$rest50"
}

started=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
big=(t_tempfs t_raw t_sshfs)
for r in $(seq "$reps"); do
  k=$(( (r - 1) % 3 ))
  for i in 0 1 2; do "${big[$(( (i + k) % 3 ))]}" "$r"; done
  if [ $((r % 2)) -eq 1 ]; then t_small "$r" tempfs; t_small "$r" sshfs
  else t_small "$r" sshfs; t_small "$r" tempfs; fi
  rm -f "$mnt_a/big-$r"
  rm -rf "$mnt_a/small-tempfs-$r" "$mnt_a/small-sshfs-$r"
done
elapsed=$(( $(date +%s) - started ))

# --- report --------------------------------------------------------------------
meta=$work/meta.txt
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) memory, Linux $(uname -r)"
  echo "tempfs: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet HEAD -- fs cli 2>/dev/null || echo ' (+ local changes)'); node A ${mode_a:-?}; node B ${mode_b:-?}"
  echo "setup: loopback; node stores, raw-copy files on one private tmpfs; redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on loopback; sshfs $(sshfs --version 2>&1 | sed -n 's/^SSHFS version //p' | head -1) (defaults) over OpenSSH $(ssh -V 2>&1 | sed 's/,.*//; s/OpenSSH_//'), cipher ${ssh_cipher:-?}"
  echo "machine load (1/5/15 min load average): $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "sizes: big file ${size_mib} MiB, ${nfiles} small files of 4 KiB, reps $reps$([ "$quick" -eq 1 ] && echo ' (--quick)'), measuring took ${elapsed} s"
} > "$meta"

"$py" - "$raw" "$meta" "$out" <<'EOF'
import csv, statistics, sys
from collections import defaultdict
raw, meta, out = sys.argv[1:4]
vals = defaultdict(dict)
units = {}
for row in csv.DictReader(open(raw)):
    vals[row["metric"]][int(row["rep"])] = float(row["value"])
    units[row["metric"]] = row["unit"]
reps = sorted({r for v in vals.values() for r in v})

def ratio(a, b):
    return {r: vals[a][r] / vals[b][r] for r in reps if r in vals[a] and r in vals[b] and vals[b][r] > 0}
derived = {
    "tempfs-first / raw-tcp-tmpfs": ratio("tempfs-first", "raw-tcp-tmpfs"),
    "tempfs-first / raw-tcp-null": ratio("tempfs-first", "raw-tcp-null"),
    "tempfs-first / sshfs-first": ratio("tempfs-first", "sshfs-first"),
    "tempfs-second / a-store": ratio("tempfs-second", "a-store"),
    "sshfs p50 / tempfs p50": ratio("small-sshfs-p50", "small-tempfs-p50"),
    "sshfs p99 / tempfs p99": ratio("small-sshfs-p99", "small-tempfs-p99"),
}
rows = [
    ("tempfs-first", "first read on B of a file written on A (remote fetch)", "MB/s"),
    ("tempfs-fetch-daemon", "  B's fetch as logged by B (bytes / logged ms)", "MB/s"),
    ("tempfs-first-cpu-B", "  CPU time of B's daemon during the first read", "cpu s"),
    ("tempfs-first-cpu-A", "  CPU time of A's daemon during the first read", "cpu s"),
    ("raw-tcp-tmpfs", "raw TCP copy, sendfile -> recv + write to tmpfs (baseline)", "MB/s"),
    ("raw-tcp-null", "raw TCP copy, sendfile -> recv, discarded", "MB/s"),
    ("tempfs-second", "second read on B (local copy, passthrough)", "MB/s"),
    ("a-store", "same read straight from A's store data file", "MB/s"),
    ("sshfs-first", "first read through sshfs of A's mount", "MB/s"),
    ("small-tempfs-p50", "4 KiB open+read+close, remote on B: p50", "us"),
    ("small-tempfs-p99", "4 KiB open+read+close, remote on B: p99", "us"),
    ("small-tempfs-mean", "4 KiB open+read+close, remote on B: mean", "us"),
    ("small-tempfs-open-p50", "  of which open() alone: p50", "us"),
    ("small-tempfs-read-p50", "  of which read()+close(): p50", "us"),
    ("small-tempfs-redis-cmds", "  redis commands (all nodes) per file read on B", "per file"),
    ("small-sshfs-p50", "4 KiB open+read+close via sshfs: p50", "us"),
    ("small-sshfs-p99", "4 KiB open+read+close via sshfs: p99", "us"),
    ("small-sshfs-mean", "4 KiB open+read+close via sshfs: mean", "us"),
    ("small-sshfs-open-p50", "  of which open() alone: p50", "us"),
    ("small-sshfs-read-p50", "  of which read()+close(): p50", "us"),
]
def fmt(x):
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.0f}"
def summary(v):
    xs = list(v.values())
    return statistics.median(xs), min(xs), max(xs), len(xs)
lines = ["| measurement | unit | median | min-max | n |", "|---|---|---:|---:|---:|"]
csvrows = [("metric", "unit", "median", "min", "max", "n")]
for key, desc, unit in rows:
    if not vals.get(key):
        continue
    m, lo, hi, n = summary(vals[key])
    lines.append(f"| {desc} (`{key}`) | {unit} | {fmt(m)} | {fmt(lo)}-{fmt(hi)} | {n} |")
    csvrows.append((key, unit, f"{m:.3f}", f"{lo:.3f}", f"{hi:.3f}", n))
lines.append("")
lines.append("| ratio (per rep, same run) | median | min-max | n |")
lines.append("|---|---:|---:|---:|")
for key, v in derived.items():
    if not v:
        continue
    m, lo, hi, n = summary(v)
    lines.append(f"| {key} | {m:.2f} | {lo:.2f}-{hi:.2f} | {n} |")
    csvrows.append(("ratio: " + key, "x", f"{m:.3f}", f"{lo:.3f}", f"{hi:.3f}", n))
verdict = []
if derived["tempfs-first / sshfs-first"]:
    m = statistics.median(derived["tempfs-first / sshfs-first"].values())
    verdict.append(f"big file, first read: tempfs is {'ahead of' if m > 1 else 'behind'} sshfs ({m:.2f}x sshfs's MB/s).")
if derived["sshfs p50 / tempfs p50"]:
    m50 = statistics.median(derived["sshfs p50 / tempfs p50"].values())
    m99 = statistics.median(derived["sshfs p99 / tempfs p99"].values())
    verdict.append(f"small files: tempfs p50 is {'lower' if m50 > 1 else 'higher'} than sshfs's (sshfs/tempfs = {m50:.2f}), p99 {'lower' if m99 > 1 else 'higher'} (sshfs/tempfs = {m99:.2f}).")
if derived["tempfs-first / raw-tcp-tmpfs"]:
    m = statistics.median(derived["tempfs-first / raw-tcp-tmpfs"].values())
    verdict.append(f"big file, first read: tempfs reaches {m:.2f}x the raw TCP copy into tmpfs.")
head = open(meta).read().strip().splitlines()
md = ["# tempfs cluster mode: remote reads on loopback", ""]
md += [f"- {h}" for h in head]
md += ["", *lines, ""]
md += [f"- {v}" for v in verdict]
md += ["",
       "Notes: medians over reps with min-max; MB/s = 10^6 bytes/s; every big-file read is one sequential pass with 1 MiB reads",
       "from open to EOF (python3 os.readv). Each rep uses NEW files on A, so B's first read and sshfs's read are first reads.",
       "Raw baseline: two python3 processes, socket.sendfile from A's store data file on the tmpfs -> recv_into 1 MiB ->",
       "write to a file on the same tmpfs (`raw-tcp-tmpfs`, the fair baseline: tempfs stores its copy too) or discarded",
       "(`raw-tcp-null`); no hashing (tempfs also computes xxHash64 and serves the reader through FUSE). Small files: per",
       "file open(name)+read+close timed with time.perf_counter, in a directory B (or sshfs) has not seen before.",
       "CPU time: utime+stime of the daemon process from /proc over the first read (the machine has the CPUs listed above)."]
open(f"{out}/cluster.md", "w").write("\n".join(md) + "\n")
with open(f"{out}/cluster.csv", "w", newline="") as f:
    csv.writer(f).writerows(csvrows)
print("\n".join(md))
EOF
log "wrote $out/cluster.csv, $out/cluster-raw.csv, $out/cluster.md, $logdir/"
