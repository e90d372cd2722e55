"""Subcommands contributed by other packages, registered on the `surge` app.

Each `register(app)` adds its commands; modules named here must not import heavy code
(Locust, FastAPI, matplotlib) at import time, only inside the command bodies.
"""

from __future__ import annotations

import importlib

import typer

_MODULES = ("sim.campaign.cli", "loadtest.cli", "loadtest.calibrate_cli")


def register_all(app: typer.Typer) -> None:
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if not e.name or not name.startswith(e.name):  # it exists but lacks something: a real error
                raise
            continue
        module.register(app)
