"""Where the runs of a sweep or plan execute: a local process pool (default) or a Ray cluster.

Both call the same module-level function on the same tasks, and every task carries its own
seed, so the same seeds give identical observations on either backend (tested). Results come
back as each run finishes (`done(index, result)`), so the caller can cache them at once.

Ray: `RayBackend(address)` connects to a running cluster (`ray start --head` on one machine,
`ray start --address=HEAD:6379` on the others; `auto` finds one started on this machine) or,
with no address, starts a local instance on loopback with `num_cpus` workers. The workers must be able to import `sim` (install surge on
every node, or pass a `runtime_env`), and a scenario's data files must exist there too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from sim.errors import SurgeError
from sim.parallel import run_tasks

T = TypeVar("T")
R = TypeVar("R")


class BackendError(SurgeError):
    """A backend cannot start (Ray not installed, no cluster at the address)."""


class Backend(Protocol):
    def map(self, fn: Callable[[T], R], tasks: Sequence[T], done: Callable[[int, R], None]) -> list[R]:
        """`[fn(t) for t in tasks]` in order; `done(i, result)` as each finishes."""
        ...

    def close(self) -> None: ...


class LocalBackend:
    """A process pool of `jobs` processes on this machine (1 = in this process)."""

    def __init__(self, jobs: int = 2) -> None:
        if jobs < 1:
            raise BackendError(f"--jobs: must be >= 1 (got {jobs})")
        self.jobs = jobs

    def map(self, fn: Callable[[T], R], tasks: Sequence[T], done: Callable[[int, R], None]) -> list[R]:
        return run_tasks(fn, tasks, self.jobs, on_result=done)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"LocalBackend(jobs={self.jobs})"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BackendError("--backend ray: Ray is not installed (pip install 'surge[ray]')") from None
    return ray


class RayBackend:
    """Ray tasks, one CPU each. Starts Ray only if it is not running in this process yet; then
    `close()` shuts down what it started (and nothing else)."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address, self.num_cpus = address, num_cpus
        self._started = False

    def _init(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            # no address: a local instance whose node address is loopback (nothing leaves the machine)
            local = {"address": "local", "num_cpus": self.num_cpus, "_node_ip_address": "127.0.0.1"}
            try:
                ray.init(**(local if self.address is None else {"address": self.address}),
                         include_dashboard=False, log_to_driver=False)
            except ConnectionError as e:
                raise BackendError(f"--ray-address: no Ray cluster at {self.address!r} ({e})") from None
            self._started = True
        return ray

    def map(self, fn: Callable[[T], R], tasks: Sequence[T], done: Callable[[int, R], None]) -> list[R]:
        if not tasks:
            return []
        ray = self._init()
        remote = ray.remote(num_cpus=1)(fn)
        index = {remote.remote(t): i for i, t in enumerate(tasks)}
        out: dict[int, R] = {}
        pending = list(index)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    out[index[ref]] = r = ray.get(ref)
                    done(index[ref], r)
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise
        return [out[i] for i in range(len(tasks))]

    def close(self) -> None:
        if self._started:
            _ray().shutdown()
            self._started = False

    def __repr__(self) -> str:
        return f"RayBackend(address={self.address!r}, num_cpus={self.num_cpus})"


def make_backend(name: str, jobs: int = 2, address: str | None = None) -> Backend:
    """`local` (a pool of `jobs` processes) or `ray` (at `address`, or a local one with `jobs` CPUs)."""
    if name == "local":
        return LocalBackend(jobs)
    if name == "ray":
        _ray()
        return RayBackend(address, jobs)
    raise BackendError(f"--backend: must be local or ray (got {name!r})")
