"""What every `surge` subcommand shares: option types, exit codes, durations, the progress bar.

Subcommand modules (`sim.cli.core`, `sim.campaign.cli`, `loadtest.cli`, ...) take their common
options from here, so `--set`, `--seed`, `--jobs` and `--out` read and behave the same in
every command, and a duration is spelled as Locust spells it (`90`, `20s`, `5m`, `1h30m`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from sim.errors import SurgeError

# Exit codes (the README's table). k6 uses 99 for failed thresholds; so do we, for a breached
# SLO or a regression against a baseline.
OK, INTERNAL_ERROR, USER_ERROR, TARGET_ERROR, SLO_BREACH = 0, 1, 2, 3, 99

Sets = Annotated[list[str] | None, typer.Option("--set", help="override a scenario field: path.to.field=value "
                                                "(YAML value; repeatable)")]
Seed = Annotated[int | None, typer.Option(help="override run.seed")]
Jobs = Annotated[int, typer.Option(min=1, max=256, help="worker processes")]
Out = Annotated[Path | None, typer.Option(help="output folder")]
DataDir = Annotated[Path | None, typer.Option(help="folder the scenario's data files (traces, empirical) must lie "
                                                   "in; default: the scenario's own folder")]

_DURATION = re.compile(r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s?)?$")


class UsageError(SurgeError):
    """A flag's value is not what the command can take."""


def parse_duration(text: str, flag: str = "--duration") -> float:
    """Seconds from `90`, `90s`, `5m`, `1h`, `1h30m` or `2m30s` (as Locust's --run-time)."""
    m = _DURATION.match(text.strip().lower())
    if not text.strip() or m is None or not any(m.groupdict().values()):
        raise UsageError(f"'{flag}' must be a duration such as 90, 20s, 5m or 1h30m (got {text!r})")
    h, mi, s = (float(m.group(k) or 0) for k in ("h", "m", "s"))
    value = 3600 * h + 60 * mi + s
    if value <= 0:
        raise UsageError(f"'{flag}' must be more than 0 seconds (got {text!r})")
    return value


@contextmanager
def progress(label: str) -> Iterator[Callable[[float], None]]:
    """A progress bar with the elapsed time and an estimate of what is left, on stderr; quiet
    when stderr is not a terminal (CI, pipes). Yields `update(fraction_done)`."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), transient=True,
                   disable=not sys.stderr.isatty())
    with bar:
        task = bar.add_task(label, total=1.0)
        yield lambda frac: bar.update(task, completed=frac)


def need_stack(command: str) -> None:
    """The reference stack and the load test need the `stack` extra (torch, FastAPI, Locust)."""
    import importlib.util

    def have(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    missing = [m for m in ("torch", "fastapi", "uvicorn", "locust") if not have(m)]
    if missing:
        raise UsageError(f"'surge {command}' needs the stack extra ({', '.join(missing)} not installed): "
                         "pip install 'surge[stack]' (install torch==2.13.0 first for the CPU build)")


def floats(text: str, flag: str) -> tuple[float, ...]:
    """Comma-separated numbers (`0.5,1,2`)."""
    try:
        out = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"'{flag}' must be comma-separated numbers (got {text!r})") from None
    if not out:
        raise UsageError(f"'{flag}' must list at least one number (got {text!r})")
    return out
