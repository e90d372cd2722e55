"""Derived files: what analyses found, written next to (or apart from) the results they read.

Analyses (`sim.campaign.analyse`, `compare_mitigations`, `explore_vulnerability`,
`loadtest.compare.differences`) are pure functions returning data; this module is the one place
that turns that data into files. Every JSON file is strict JSON (`sim.results.strict_json`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.results import strict_json


def write_json(path: Path, data: Any) -> Path:
    """`data` as strict JSON at `path` (folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(strict_json(data) + "\n")
    return path


def write_metastability(folder: Path, analysis: dict[str, Any]) -> Path:
    """`metastability.json`: onset, trigger end, recovery, amplification (`sim.campaign.analyse`)."""
    return write_json(folder / "metastability.json", analysis)


def write_mitigations(rows: list[dict[str, Any]], folder: Path) -> Path:
    """`mitigations.json` and `mitigations.md` (`sim.campaign.compare_mitigations`); the folder."""
    from sim.campaign.mitigations import format_table

    write_json(folder / "mitigations.json", rows)
    (folder / "mitigations.md").write_text(format_table(rows) + "\n")
    return folder


def write_vulnerability(vm: Any, folder: Path) -> Path:
    """`vulnerability.json` of a `sim.campaign.explore.VulnerabilityMap`; its path."""
    return write_json(folder / "vulnerability.json", vm.to_json())


def write_differences(sim: Any, meas: Any, folder: Path) -> Path:
    """`differences.json` and `differences.md`: simulation against measurement
    (`loadtest.compare.differences`); the Markdown file's path."""
    from loadtest.compare import differences, markdown

    d = differences(sim, meas)
    write_json(folder / "differences.json", d)
    out = folder / "differences.md"
    out.write_text(markdown(d))
    return out
