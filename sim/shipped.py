"""The scenarios that ship with surge: in a wheel they are the package data of `sim.examples`;
in a source checkout they are the repository's `scenarios/` folder."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from sim.errors import ScenarioError


def scenarios_dir() -> Path:
    """The folder of the shipped scenarios."""
    try:
        return Path(str(resources.files("sim.examples")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / "scenarios"


def examples() -> list[Path]:
    """Every shipped scenario (not the mitigation or planning overlays), relative to
    `scenarios_dir()`."""
    root = scenarios_dir()
    return sorted(p.relative_to(root) for p in root.rglob("*.yaml")
                  if not {"mitigations", "overlays"} & set(p.parts))


def resolve(path: str | Path) -> Path:
    """A scenario path as given, else the shipped scenario of that name (`feb8_outage`,
    `validation/mm1.yaml`); a name that is neither is a one-line error."""
    p = Path(path)
    if p.exists():
        return p
    root = scenarios_dir()
    for cand in (root / p, root / p.with_suffix(".yaml")):
        if cand.is_file():
            return cand
    raise ScenarioError(f"file not found (and no shipped scenario is called {str(path)!r}: `surge examples` lists them)",
                        file=str(path))


def copy_to(folder: Path) -> Path:
    """Copy the shipped scenarios (with their data and mitigation overlays) into `folder`."""
    if folder.exists() and any(folder.iterdir()):
        raise ScenarioError(f"'{folder}' exists and is not empty: choose a new folder")
    shutil.copytree(scenarios_dir(), folder, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return folder
