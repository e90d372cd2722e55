"""Realistic load on any OpenAI-compatible server: every prompt its own text, exact lengths
asked (ignore_eos, min_tokens), chat or text completions, API key and extra headers, reasoning
and tool-call deltas counted as tokens, and the user's own command classes (--plugin)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


def drive(endpoint: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(HERE / "realism_driver.py"), endpoint], capture_output=True, text=True,
                         timeout=120, cwd=HERE.parents[1])
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_prompts_are_distinct_exact_and_authenticated(endpoint: str) -> None:
    d = drive(endpoint)
    a, b, buy = d["seen"]
    path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
    assert a["path"] == b["path"] == path and "allow_redirects" in a["kw"]
    text = [x["body"]["messages"][0]["content"] if endpoint == "chat" else x["body"]["prompt"] for x in (a, b)]
    assert text[0] != text[1] and text[0].split()[:3] != text[1].split()[:3]  # no shared prefix to cache
    overhead = 3 if endpoint == "chat" else 1  # BOS (+ "user", ":") as the reference stack counts them
    assert len(text[0].split()) == 24 - overhead  # tiny.yaml's chat prompt: 24 tokens
    assert a["body"]["ignore_eos"] is True and a["body"]["min_tokens"] == a["body"]["max_tokens"] == 8
    assert a["headers"]["Authorization"] == "Bearer sk-test" and a["headers"]["X-Team"] == "qa"
    assert buy["path"] == "/api/orders" and buy["body"] == {"prompt_tokens": 24, "max_tokens": 4}
    assert len(buy["headers"]["Idempotency-Key"]) == 32
    assert d["produced"] == [True, True, True, False, False]


def test_a_plugin_for_a_class_the_scenario_lacks_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from loadtest.plugins import command\n\n@command('nope')\ndef f(a):\n    return 'ok'\n")
    code = ("import sys; sys.path.insert(0, '.'); from loadtest import plugins; "
            f"plugins.load([{str(bad)!r}], ['chat'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=HERE.parents[1], timeout=60)
    assert out.returncode != 0 and "not in the scenario" in out.stderr
