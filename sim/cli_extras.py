"""Subcommands contributed by other packages, registered on the `surge` app.

Each `register(app)` adds its commands; modules named here must not import heavy code
(Locust, FastAPI, matplotlib) at import time, only inside the command bodies.
"""

from __future__ import annotations

import importlib

import typer

_MODULES = ("sim.campaign.cli", "sim.planning.cli", "loadtest.cli", "loadtest.calibrate_cli")


def register_all(app: typer.Typer) -> None:
    for name in _MODULES:
        importlib.import_module(name).register(app)
