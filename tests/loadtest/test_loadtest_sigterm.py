"""SIGTERM to `surge validate-stack` stops the stack (and Locust) it started: the processes it
spawned end with it, none is left running (regression test: they used to be orphaned)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> dict[int, str]:
    """Processes whose parent is `pid`: their command lines."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_to_validate_stack_stops_the_stack_it_started(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import sys; from sim.cli import main; sys.argv[0] = 'surge'; main()",
           "validate-stack", "scenarios/validate_stack.yaml", "--no-calibrate", "--out", str(tmp_path / "v"),
           "--loads", "0.2", "--repeats", "1", "--duration", "30s", "--probe-duration", "30s", "--fault-load", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        stack: list[int] = []
        end = time.monotonic() + 120
        while not stack and time.monotonic() < end and proc.poll() is None:  # until its stack serves a probe
            kids = _children(proc.pid)
            if any("locust" in c for c in kids.values()):
                stack = [p for p, c in kids.items() if "loadtest.stack" in c]
            time.sleep(0.5)
        assert stack, "validate-stack started no stack and no Locust in 120 s"
        spawned = list(_children(proc.pid))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) != 0  # it stopped (not completed)
        end = time.monotonic() + 30
        while any(_alive(p) for p in spawned) and time.monotonic() < end:
            time.sleep(0.2)
        assert not [p for p in spawned if _alive(p)], "processes left running after SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
