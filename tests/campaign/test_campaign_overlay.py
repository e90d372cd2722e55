"""Overlays: deep merge, `set` lines, and one-line errors that name the overlay."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.campaign.overlay import deep_merge, load_with_overlay
from sim.errors import ScenarioError

ROOT = Path(__file__).resolve().parents[2]
FEB8 = ROOT / "scenarios" / "feb8_outage.yaml"


def test_deep_merge_merges_mappings_and_replaces_the_rest() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    out = deep_merge(base, {"a": {"c": [3], "e": 2}})
    assert out == {"a": {"b": 1, "c": [3], "e": 2}, "d": 1}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # the base is not changed


def test_overlay_changes_only_what_it_names(tmp_path: Path) -> None:
    ov = tmp_path / "lifo_and_weaker_storm.yaml"
    ov.write_text("description: test\nmerge:\n  services:\n    gateway: {discipline: lifo}\n"
                  "set:\n  - faults.0.magnitude=0.5\n")
    base = load_with_overlay(FEB8)
    sc = load_with_overlay(FEB8, ov)
    assert sc.services.gateway and sc.services.gateway.discipline == "lifo"
    assert sc.services.gateway.queue_limit == base.services.gateway.queue_limit  # type: ignore[union-attr]
    assert sc.faults[0].magnitude == 0.5


@pytest.mark.parametrize("text, where", [
    ("merge:\n  clients: {retry_budget: 0.1}\n", "clients.retry_budget"),  # a typo in a field name
    ("bogus: 1\n", "bogus"),
    ("merge: [1, 2]\n", "merge"),
    ("set: [faults.9.magnitude=1]\n", "faults.9"),
])
def test_bad_overlay_is_one_line_naming_the_overlay(tmp_path: Path, text: str, where: str) -> None:
    ov = tmp_path / "bad.yaml"
    ov.write_text(text)
    with pytest.raises(ScenarioError) as e:
        load_with_overlay(FEB8, ov)
    msg = str(e.value)
    assert "\n" not in msg and where in msg
