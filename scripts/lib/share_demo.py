#!/usr/bin/env python3
"""The three ways co-located containers share data, one role per process.

Used by scripts/demo: each role runs in its own process (and, there, its own
mount namespace) and talks to its peer only through the volume directory.
"""
import mmap
import os
import socket
import sys
import time

TIMEOUT = 10.0


def wait_for(cond, what):
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.01)


def file_writer(vol):
    path = os.path.join(vol, "stage1.out")
    with open(path + ".tmp", "w") as f:
        for i in range(3):
            f.write(f"record {i} from pid {os.getpid()}\n")
    os.rename(path + ".tmp", path)
    print(f"  writer (pid {os.getpid()}): wrote {path}")


def file_reader(vol):
    path = os.path.join(vol, "stage1.out")
    wait_for(lambda: os.path.exists(path), path)
    with open(path) as f:
        lines = f.read().splitlines()
    print(f"  reader (pid {os.getpid()}): read {len(lines)} records, first: {lines[0]!r}")


def shm_map(vol, create):
    path = os.path.join(vol, "region.shm")
    if create:
        with open(path + ".tmp", "wb") as f:
            f.truncate(4096)
        os.rename(path + ".tmp", path)
    else:
        wait_for(lambda: os.path.exists(path), path)
    fd = os.open(path, os.O_RDWR)
    m = mmap.mmap(fd, 4096, mmap.MAP_SHARED)
    os.close(fd)
    return m


def shm_a(vol):
    m = shm_map(vol, True)
    msg = f"ping from pid {os.getpid()}".encode()
    m[0:len(msg)] = msg  # a plain store into the mapping: no write(), no msync
    wait_for(lambda: m[2048] != 0, "the peer's reply in shared memory")
    reply = bytes(m[2048:2048 + 64]).rstrip(b"\0").decode()
    print(f"  process A (pid {os.getpid()}): stored {msg.decode()!r}, saw reply {reply!r}")


def shm_b(vol):
    m = shm_map(vol, False)
    wait_for(lambda: m[0] != 0, "the peer's message in shared memory")
    got = bytes(m[0:64]).rstrip(b"\0").decode()
    reply = f"pong from pid {os.getpid()}".encode()
    m[2048:2048 + len(reply)] = reply
    print(f"  process B (pid {os.getpid()}): saw {got!r} in the mapping, stored a reply")


def fd_server(vol):
    path = os.path.join(vol, "handoff.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    s.settimeout(TIMEOUT)
    conn, _ = s.accept()
    mfd = os.memfd_create("stage-buffer")
    os.write(mfd, b"bytes in an anonymous memfd")
    ffd = os.open(os.path.join(vol, "stage1.out"), os.O_RDONLY)
    socket.send_fds(conn, [b"fds"], [mfd, ffd])
    conn.recv(1)  # wait until the peer is done
    print(f"  server (pid {os.getpid()}): passed a memfd and an open tempfs file over {path}")
    conn.close()
    s.close()
    os.unlink(path)


def fd_client(vol):
    path = os.path.join(vol, "handoff.sock")
    wait_for(lambda: os.path.exists(path), path)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(TIMEOUT)
    c.connect(path)
    _, fds, _, _ = socket.recv_fds(c, 16, 2)
    mem = os.pread(fds[0], 64, 0).decode()
    first = os.pread(fds[1], 64, 0).decode().splitlines()[0]
    c.send(b"k")
    print(f"  client (pid {os.getpid()}): memfd says {mem!r}; tempfs file starts {first!r}")


ROLES = {f.__name__: f for f in (file_writer, file_reader, shm_a, shm_b, fd_server, fd_client)}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ROLES:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(ROLES)}}} VOLUME_DIR")
    ROLES[sys.argv[1]](sys.argv[2])
