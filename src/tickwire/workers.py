"""`tickwire serve --workers N`: N processes serving one port, one core each.

Every worker is a whole node (event loop, hub, connections) with a listening socket of
its own, bound with SO_REUSEPORT: the kernel spreads new connections over the workers,
with no shared accept queue and no lock. Workers share history, keyed state, presence,
per-user caps and connection rates through the Redis broker; the settings refuse more than
one worker on the memory broker, which would give each worker a history of its own.

The parent process only supervises:

- it holds the port (bound, never listening, so it takes no connections) for as long as
  it runs, so a port of 0 is chosen once and a restarted worker gets the same one;
- SIGTERM or SIGINT: every worker gets SIGTERM and hands its connections over (they
  reconnect to the others, or to the next server, and resume by id); a worker still
  running after the grace is killed;
- a worker that dies is started again, unless it died within `MIN_UPTIME_S` of starting
  (a broken configuration: the supervisor stops the others and exits with an error);
- a supervisor killed outright (SIGKILL) cannot stop its workers: each worker notices that
  its parent is gone and shuts down as on SIGTERM, so none keeps the port.

Workers are started with `spawn` (a fresh interpreter; the settings are passed pickled, a
generated demo secret included, so every worker verifies the same tokens) in their own
process group, so a terminal's Ctrl-C reaches the supervisor alone and shutdown happens once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from tickwire.config import Settings

log = logging.getLogger("tickwire.workers")

MIN_UPTIME_S = 5.0  # a worker that dies sooner is not restarted: its configuration is broken
KILL_AFTER_S = 10.0  # beyond the shutdown grace, before a worker that does not stop is killed
ORPHAN_CHECK_S = 1.0  # how often a worker looks whether its supervisor still lives

# What a worker runs: serve `settings` on the given listening sockets until told to stop.
Runner = Callable[[Settings, list[socket.socket]], None]


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT (not listening yet)."""
    family, type_, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def worker_main(settings: Settings, index: int, run: Runner, supervisor: int) -> None:
    """A worker process: its own process group, its own socket on the shared port. It is told
    its supervisor's pid: one killed while the worker was starting is already gone here."""
    os.setpgrp()
    threading.Thread(target=_stop_when_orphaned, args=(supervisor,), daemon=True).start()
    sock = reuseport_socket(settings.host, settings.port)
    run(settings, [sock])


def _stop_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_S)
    os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """Starts the workers, restarts the ones that die, stops them all on a signal."""

    def __init__(
        self, settings: Settings, run: Runner, announce: Callable[[Settings], None] | None = None
    ) -> None:
        self.settings = settings
        self.run_worker = run
        self.announce = announce  # told the settings once the port is known
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, tuple[BaseProcess, float]] = {}  # index -> (process, started)
        self._stopping = False
        self.failed = False

    def serve(self) -> int:
        """Run until a signal (exit status 0) or a worker failing at start (1)."""
        holder = reuseport_socket(self.settings.host, self.settings.port)
        self.settings = self.settings.model_copy(update={"port": holder.getsockname()[1]})
        if self.announce is not None:
            self.announce(self.settings)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.settings.workers):
                self._start(index)
            self._watch()
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            holder.close()
        return 1 if self.failed else 0

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=worker_main,
            args=(self.settings, index, self.run_worker, os.getpid()),
            name=f"tickwire-worker-{index}",
        )
        process.start()
        self._workers[index] = (process, time.monotonic())

    def _watch(self) -> None:
        while not self._stopping:
            sentinels = {p.sentinel: index for index, (p, _) in self._workers.items()}
            for sentinel in wait(list(sentinels)):
                if self._stopping:
                    return
                assert isinstance(sentinel, int)
                index = sentinels[sentinel]
                process, started = self._workers[index]
                process.join()
                if time.monotonic() - started < MIN_UPTIME_S:
                    log.error(
                        "worker exited right after it started: stopping",
                        extra={"worker": index, "exit_code": process.exitcode},
                    )
                    self.failed = True
                    return
                log.warning(
                    "worker exited: restarting it", extra={"worker": index, "exit_code": process.exitcode}
                )
                self._start(index)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        for process, _ in self._workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    def _stop_all(self) -> None:
        self._stopping = True
        deadline = time.monotonic() + 2 * self.settings.shutdown_grace_s + KILL_AFTER_S
        for process, _ in self._workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process, _ in self._workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
