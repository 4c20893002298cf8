"""Starts throwaway redis-server processes for the test suites without port collisions.

The protocol (tests/PORTS.md; the Rust, Go and shell harnesses follow it too):

* Ports come from 12000 up to, not including, the low end of the kernel's ephemeral range
  (/proc/sys/net/ipv4/ip_local_port_range, 32768 when unreadable), so an outgoing connection
  never takes a test server's port.
* A port is leased by taking flock(LOCK_EX | LOCK_NB) on ${TMPDIR:-/tmp}/stateful-route-ports/
  <port>.lock and then checking that a probe bind to 127.0.0.1:<port> succeeds (the probe is
  closed at once). The walk starts at a random offset and goes forward, wrapping. The lease
  lives as long as the lock's file descriptor: this module keeps it open for the life of the
  process (_HELD) and also hands it to the redis-server child, so that a detached server holds
  its own lease for its whole life.
* A Redis Cluster node leases a second port for its bus and gets --cluster-port (never
  port+10000).
* A server logs to <its dir>/redis.log. If it exits, or is not serving (INFO answering with
  its own process_id) within 10 s, its log is read: "Address already in use" means another
  process took the port between the probe and the server's bind, so fresh ports are leased
  and the start is retried (5 attempts in all); any other failure raises with the log's tail.

Library: lease_port(), start_redis(). CLI, for the shell launchers (always detached):
    python3 tests/redis_launch.py start DIR [--cluster] [-- REDIS-SERVER-ARGS...]
prints shell assignments port=, cluster_port=, pid=, log= and writes DIR/redis.pid.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import random
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

LOW_PORT = 12000
ATTEMPTS = 5
READY_WITHIN = 10.0
TAIL_LINES = 40
IN_USE = "Address already in use"

_HELD: list[int] = []  # lock fds of this process's leases, open until the process exits


def port_range() -> range:
    """The ports leases come from: 12000 up to the start of the ephemeral range."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            high = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        high = 32768
    if high <= LOW_PORT:
        raise RuntimeError(f"the ephemeral port range starts at {high}: no room above {LOW_PORT}")
    return range(LOW_PORT, high)


def lock_dir() -> pathlib.Path:
    d = pathlib.Path(os.environ.get("TMPDIR") or "/tmp") / "stateful-route-ports"
    d.mkdir(parents=True, exist_ok=True)
    try:
        d.chmod(0o777)  # shared by every user's test runs
    except OSError:
        pass  # someone else's directory: it was opened up when it was made
    return d


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def lease_port() -> tuple[int, int]:
    """Leases a port; returns (port, lock fd). The fd is held until the process exits."""
    ports = port_range()
    d = lock_dir()
    start = random.randrange(len(ports))
    for i in range(len(ports)):
        port = ports[(start + i) % len(ports)]
        fd = os.open(d / f"{port}.lock", os.O_RDONLY | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if not _bindable(port):
            os.close(fd)
            continue
        _HELD.append(fd)
        return port, fd
    raise RuntimeError(f"no port to lease in {ports.start}-{ports.stop - 1}")


def release(fd: int) -> None:
    """Closes a lease's lock fd in this process (a child that inherited it keeps the lease)."""
    if fd in _HELD:
        _HELD.remove(fd)
        os.close(fd)


def tail(path: pathlib.Path | str, lines: int = TAIL_LINES, offset: int = 0) -> str:
    """The last `lines` lines of a file, from byte `offset` on ("" when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def server_pid(port: int) -> int | None:
    """The process_id the server on `port` reports (INFO server), or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"INFO server\r\n")
            reply = s.makefile("rb")
            head = reply.readline()  # $<length> of a bulk string, else an error or status
            if not head.startswith(b"$"):
                return None
            body = reply.read(int(head[1:]))
    except (OSError, ValueError):
        return None
    m = re.search(rb"^process_id:(\d+)", body, re.MULTILINE)
    return int(m.group(1)) if m else None


@dataclass
class Server:
    """One started redis-server."""

    dir: pathlib.Path
    port: int
    cluster_port: int | None
    proc: subprocess.Popen[bytes] = field(repr=False)
    log: pathlib.Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        return tail(self.log, lines)


def start_redis(
    dir: pathlib.Path | str,
    extra_args: Sequence[str] = (),
    *,
    cluster: bool = False,
    daemonize: bool = False,
) -> Server:
    """Starts `redis-server *extra_args` on leased port(s) in `dir`, logging to dir/redis.log.

    `extra_args` come first, so a config file may lead them (a sentinel's). The harness adds
    --port, --bind 127.0.0.1, --dir, --logfile and, with `cluster`, --cluster-enabled yes,
    --cluster-port (a second lease) and --cluster-config-file nodes-<port>.conf. With
    `daemonize` the server gets its own session and keeps running after this process exits,
    holding its leases itself; otherwise this process holds them too, and the caller kills it.
    Returns once the server answers; retries on "Address already in use"; raises otherwise.
    """
    d = pathlib.Path(dir).resolve()
    d.mkdir(parents=True, exist_ok=True)
    log = d / "redis.log"
    failures = []
    for attempt in range(1, ATTEMPTS + 1):
        port, fd = lease_port()
        fds = [fd]
        cport = None
        args = [*extra_args, "--port", str(port), "--bind", "127.0.0.1"]
        args += ["--dir", str(d), "--logfile", str(log)]
        if cluster:
            cport, cfd = lease_port()
            fds.append(cfd)
            args += ["--cluster-enabled", "yes", "--cluster-port", str(cport)]
            args += ["--cluster-config-file", f"nodes-{port}.conf"]
        offset = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:  # what redis says before it opens its log goes there too
            proc = subprocess.Popen(
                ["redis-server", *args],
                cwd=d,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=fds,
                start_new_session=daemonize,
            )
        if _serving(proc, port):
            if daemonize:
                for f in fds:
                    release(f)  # the detached server holds them now
            return Server(d, port, cport, proc, log)
        if proc.poll() is None:
            how = f"did not answer within {READY_WITHIN:g} s"
            proc.kill()
        else:
            how = f"exited with status {proc.returncode}"
        proc.wait()
        said = tail(log, 10**6, offset)
        if IN_USE not in said:
            raise RuntimeError(
                f"redis-server {' '.join(args)} {how}; last lines of {log}:\n"
                + tail(log, TAIL_LINES, offset)
            )
        failures.append(f"attempt {attempt}: ports {port}/{cport} already in use")
    raise RuntimeError(
        f"redis-server did not start in {ATTEMPTS} attempts ({'; '.join(failures)});"
        f" last lines of {log}:\n{tail(log)}"
    )


def _serving(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Polls until `proc` answers on `port` (and not some other server); False if it exits."""
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if server_pid(port) == proc.pid:
            return True
        time.sleep(0.02)
    return False


def main(argv: list[str]) -> int:
    usage = "usage: redis_launch.py start DIR [--cluster] [-- REDIS-SERVER-ARGS...]"
    rest: list[str] = []
    if "--" in argv:
        rest = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    if len(argv) < 2 or argv[0] != "start" or set(argv[2:]) - {"--cluster"}:
        print(usage, file=sys.stderr)
        return 2
    try:
        s = start_redis(argv[1], rest, cluster="--cluster" in argv[2:], daemonize=True)
    except (RuntimeError, OSError) as e:
        print(f"redis_launch.py: {e}", file=sys.stderr)
        return 1
    (s.dir / "redis.pid").write_text(f"{s.pid}\n")
    out = {"port": s.port, "cluster_port": s.cluster_port or "", "pid": s.pid, "log": s.log}
    for k, v in out.items():
        print(f"{k}={shlex.quote(str(v))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
