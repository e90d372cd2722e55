"""Running independent simulations in parallel processes (replications, sweeps)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_tasks(fn: Callable[[T], R], tasks: Sequence[T], jobs: int = 2,
              progress: Callable[[float], None] | None = None) -> list[R]:
    """`[fn(t) for t in tasks]`, in order, on `jobs` processes (1 = in this process);
    `progress(fraction done)` after each task. `fn` must be a module-level function."""
    out: list[R] = []

    def done(r: R) -> None:
        out.append(r)
        if progress:
            progress(len(out) / len(tasks))

    if jobs <= 1:
        for t in tasks:
            done(fn(t))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for r in pool.map(fn, tasks):
                done(r)
    return out
