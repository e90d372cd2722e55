"""Running independent simulations in parallel processes (replications, sweeps)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_tasks(fn: Callable[[T], R], tasks: Sequence[T], jobs: int = 2,
              progress: Callable[[float], None] | None = None,
              on_result: Callable[[int, R], None] | None = None) -> list[R]:
    """`[fn(t) for t in tasks]`, in order, on `jobs` processes (1 = in this process);
    `progress(fraction done)` and `on_result(index, result)` as each task finishes (in the order
    they finish, so a caller can save work before an interruption). `fn` must be a module-level
    function."""
    out: dict[int, R] = {}

    def done(i: int, r: R) -> None:
        out[i] = r
        if on_result:
            on_result(i, r)
        if progress:
            progress(len(out) / len(tasks))

    if jobs <= 1 or len(tasks) <= 1:
        for i, t in enumerate(tasks):
            done(i, fn(t))
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
            futures: dict[Future[R], int] = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
            try:
                for f in as_completed(futures):
                    done(futures[f], f.result())
            except BaseException:
                for f in futures:  # an interrupt waits only for the tasks already running
                    f.cancel()
                raise
    return [out[i] for i in range(len(tasks))]
