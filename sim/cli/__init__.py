"""The `surge` command: the one front door that wires scenario, engines, load test and reports.

Subcommands live next to what they drive (`sim.cli.core`: validate, schema, run, report,
compare, check, stack; `sim.campaign.cli`; `loadtest.cli`; `loadtest.calibrate_cli`; ...) and
share `sim.cli.options`. They import `reports`, `loadtest` and the engines inside their bodies,
so `import sim` stays light. `main` is the one error boundary: a user's mistake (`SurgeError`)
prints one line `Type: message` and exits with its code (2, or 3 for a target that cannot be
reached); anything else is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from sim.cli.options import USER_ERROR
from sim.errors import SurgeError

# modules with a `register(app)`; each imports its heavy parts inside its commands
COMMANDS = ("sim.cli.core", "sim.campaign.cli", "sim.planning.cli", "loadtest.cli", "loadtest.calibrate_cli",
            "loadtest.validate_cli")
_app: typer.Typer | None = None


def build_app() -> typer.Typer:
    """The `surge` app with every subcommand registered (once; the modules import
    `sim.cli.options`, so registration waits until the app is asked for)."""
    global _app
    if _app is None:
        _app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                           help="surge: simulate and load-test AI agent stacks under campaign-scale load.")
        for name in COMMANDS:
            importlib.import_module(name).register(_app)
    return _app


def __getattr__(name: str) -> Any:
    if name == "app":
        return build_app()
    raise AttributeError(f"module 'sim.cli' has no attribute {name!r}")


def main() -> None:
    try:
        build_app()()
    except SurgeError as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(e.exit_code or USER_ERROR)


__all__ = ["app", "build_app", "main"]
