"""The loopback guard holds against redirects (regression: Locust's client and the model probe
followed 302/307 anywhere; without `--allow-remote` a run made 49 connection attempts to a
private address).

Measured in a network namespace made for the test: it has only its loopback device, with one
private address (10.213.0.1) added to it, so nothing can leave it. A stub on 127.0.0.1 answers
every load request (logins, chat, agent commands, fault posts) with a 307 to a trap listening
on the private address, which counts each connection made to it. A full `surge loadtest` runs
inside the namespace; the trap must count zero. A control run with a client that follows
redirects shows that the trap sees a connection when one is made. Where namespaces cannot be
made (not root), the same runs on this machine's loopback with the trap on 127.0.0.2: it shows
that no redirect is followed at all, though not what a private address would see.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from loadtest_helpers import TINY

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
PRIVATE = "10.213.0.1"  # exists only inside the test's namespace
SURGE = str(Path(sys.executable).with_name("surge"))


def _netns_or_skip(name: str) -> None:
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2 (`ip`)")
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")


class Where(NamedTuple):
    """Where the test runs: a namespace (None: this machine's loopback) and the trap's address."""

    ns: str | None
    trap_host: str
    stub_port: int
    trap_port: int

    def cmd(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *cmd] if self.ns else list(cmd)


def _run(where: Where, *cmd: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(where.cmd(*cmd), capture_output=True, text=True, **kw)  # type: ignore[call-overload]


@pytest.fixture(params=["namespace", "loopback"])
def where(request: pytest.FixtureRequest) -> Iterator[Where]:
    from loadtest.procs import free_port

    if request.param == "loopback":
        yield Where(None, "127.0.0.2", free_port(), free_port())
        return
    ns = f"surge-guard-{os.getpid()}"
    _netns_or_skip(ns)
    w = Where(ns, PRIVATE, 18765, 8080)
    try:
        _run(w, "ip", "link", "set", "lo", "up", check=True)
        _run(w, "ip", "addr", "add", f"{PRIVATE}/32", "dev", "lo", check=True)
        yield w
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _stub(where: Where, counts: Path, *flags: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(where.cmd(sys.executable, str(Path(__file__).with_name("redirect_stub.py")),
                                      str(where.stub_port), where.trap_host, str(where.trap_port), str(counts), *flags))
    for _ in range(100):
        if counts.exists():
            break
        time.sleep(0.05)
    time.sleep(0.3)
    return proc


def _counts(path: Path) -> dict[str, int]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _loadtest(where: Where, out: Path, duration: str = "4s") -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(ROOT), "SURGE_ADMIN_TOKEN": "guard-admin", "SURGE_USER_SECRET": "guard-users"}
    return _run(where, SURGE, "loadtest", str(TINY), "--host", f"http://127.0.0.1:{where.stub_port}", "--duration",
                duration, "--out", str(out), "--no-simulate", "--no-fail-on-slo", "--set", "faults.0.at_s=0.5",
                cwd=ROOT, env=env, timeout=240)


def test_a_load_run_follows_no_redirect_off_loopback(where: Where, tmp_path: Path) -> None:
    counts = tmp_path / "counts.json"
    stub = _stub(where, counts)
    try:
        run = _loadtest(where, tmp_path / "run")
        seen = _counts(counts)
        # control: a client that follows redirects (urllib's default) does reach the trap
        follow = f"import urllib.request as u; u.urlopen('http://127.0.0.1:{where.stub_port}/v1/chat/completions', timeout=3)"
        _run(where, sys.executable, "-c", follow, timeout=30)
        after = _counts(counts)
    finally:
        stub.terminate()
        stub.wait(10)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert seen["stub"] > 20, seen  # logins, commands and the fault post all went out, each to the stub
    assert seen["trap"] == 0, f"{seen['trap']} connection(s) to {where.trap_host} without --allow-remote"
    assert after["trap"] == 1, after  # the trap counts a follower


def test_a_redirecting_model_probe_stops_the_run_before_any_load(where: Where, tmp_path: Path) -> None:
    counts = tmp_path / "counts.json"
    stub = _stub(where, counts, "--redirect-models")
    try:
        run = _loadtest(where, tmp_path / "run", duration="2s")
        seen = _counts(counts)
    finally:
        stub.terminate()
        stub.wait(10)
    assert run.returncode == 3 and "redirect" in run.stderr, run.stderr[-1000:]
    assert seen == {"stub": 1, "trap": 0}, seen
