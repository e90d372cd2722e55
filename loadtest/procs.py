"""The processes of a load run: the reference stack and Locust (local, or master + workers),
each a subprocess on loopback with a log file in the run folder and a hard time limit.

Locust is never imported here: it patches the standard library with gevent, so it only ever
runs in its own processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from loadtest.credentials import Credentials
from loadtest.safety import LoadTestError

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""), **extra}


@contextmanager
def on_cores(cpus: tuple[int, ...] | None) -> Iterator[None]:
    """Run this process (the in-process calibration) on `cpus`, then restore its affinity."""
    before = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def core_share(cpus: tuple[int, ...] | None, seconds: float = 1.0) -> float:
    """The share of a core that CPU-bound work of this process gets on `cpus` now: a thread spins
    there for `seconds` and its CPU clock is divided by the wall clock (1: the core is free;
    other processes' work, at this process's nice level, takes the rest)."""
    with on_cores(cpus[:1] if cpus else None):
        t0, c0 = time.perf_counter(), time.thread_time()
        while time.perf_counter() - t0 < seconds:
            pass
        return min(1.0, (time.thread_time() - c0) / (time.perf_counter() - t0))


def pinned(cpus: tuple[int, ...] | None) -> Callable[[], None]:
    """A `preexec_fn`: the child (and every thread it starts) pinned to `cpus` (None: anywhere),
    and sent SIGTERM when this process dies (Linux), even by SIGKILL: no orphan stack or Locust."""
    mask = set(cpus) if cpus else None

    def setup() -> None:
        if mask:
            os.sched_setaffinity(0, mask)
        _die_with_parent()
    return setup


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextmanager
def stopped_by_sigterm() -> Iterator[None]:
    """Inside: SIGTERM ends this process as Ctrl-C does (SystemExit in the main thread), so the
    `with` blocks that started a stack or Locust stop them on the way out (the default action
    would end it at once and leave them running). Outside the main thread it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)
    before = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class StackProcess:
    """`python -m loadtest.stack` on a loopback port, serving the scaled scenario; `options` are
`StackOptions` fields; `credentials` reach it through its environment only (never its
command line, which any local user can read)."""

    def __init__(self, scenario_file: Path, folder: Path, credentials: Credentials, port: int | None = None,
                 options: dict[str, Any] | None = None, cpus: tuple[int, ...] | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.scenario_file, self.folder, self.credentials = scenario_file, folder, credentials
        secret_fields = {"admin_token", "session_secret", "user_secret"}
        self.options = {k: v for k, v in (options or {}).items() if k not in secret_fields}
        self.cpus = cpus  # pin the stack to these cores (None: where the OS puts it)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout_s: float = 90.0) -> StackProcess:
        cmd = [sys.executable, "-m", "loadtest.stack", "--port", str(self.port), "--scenario", str(self.scenario_file),
               "--db", str(self.folder / "orders.db"), "--options-json", json.dumps(self.options)]
        self._log = open(self.folder / "stack.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(**self.credentials.env()),
                                     stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=pinned(self.cpus))
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise LoadTestError(f"the stack exited with code {self.proc.returncode}; see {self.folder / 'stack.log'}")
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise LoadTestError(f"the stack was not ready in {timeout_s:g} s; see {self.folder / 'stack.log'}")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> StackProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_locust(plan_file: Path, host: str, workers: int, folder: Path, limit_s: float,
               on_tick: Callable[[], None] | None = None, extra_args: list[str] | None = None,
               master_port: int | None = None, credentials: Credentials | None = None,
               cpus: tuple[int, ...] | None = None) -> int:
    """Run Locust headless with the plan: local runner (workers=0) or master + workers on
    loopback (`master_port`, default a free one), with `credentials` in their environment.
    Returns the master's exit code; kills everything after `limit_s` seconds. `on_tick()` is
    called about twice a second while it runs (the live display); `extra_args` go to every
    Locust process as given."""
    env = _env(SURGE_LOADTEST_PLAN=str(plan_file), **(credentials or Credentials()).env())
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host, "--loglevel", "WARNING",
            "--exit-code-on-error", "0", "--only-summary", *(extra_args or [])]
    logs: list[IO[bytes]] = []
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(folder / f"locust-{name}.log", "ab")  # noqa: SIM115 - closed below
        logs.append(log)
        p = subprocess.Popen(base + args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                             preexec_fn=pinned(cpus))
        procs.append(p)
        return p

    # the load shape ends the run; the wait below is the hard bound (Locust ignores --run-time with a shape)
    backstop = ["--stop-timeout", "5"]
    finished = False
    try:
        if workers <= 0:
            main = spawn(["--headless", *backstop], "local")
        else:
            port = master_port or free_port()
            main = spawn(["--headless", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                          "--expect-workers", str(workers), "--expect-workers-max-wait", "60", *backstop], "master")
            for k in range(workers):
                spawn(["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)], f"worker{k}")
        end = time.monotonic() + limit_s + 60
        while main.poll() is None:
            if time.monotonic() > end:
                raise LoadTestError(f"Locust did not finish within {limit_s + 60:g} s; see {folder}/locust-*.log")
            if on_tick is not None:
                on_tick()
            time.sleep(0.5)
        finished = True
        return main.returncode
    finally:
        for p in procs[1:] + procs[:1]:
            if finished:  # workers end after the master; on the way out of an error, stop them now
                with contextlib.suppress(Exception):
                    p.wait(10)
            _stop(p, 5)
        for log in logs:
            log.close()
