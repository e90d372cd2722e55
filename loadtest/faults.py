"""The scenario's fault timeline, applied to a live stack through `POST /admin/faults`.

Each fault is posted at `t0 + at_s` with its `duration_s`; the stack ends it by itself, so a
load generator that dies mid-fault leaves no fault behind for longer than the scenario says.
Every start is an event (`fault_start`, with the delay from the planned time and the HTTP
status); the end is an event at the planned end (`fault_end`). A fault the stack refused is a
`fault_error` event, never a silent skip.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from loadtest.safety import fetch
from sim.scenario import Fault

EventFn = Callable[..., None]  # (t_s, kind, target, **detail)


def post_fault(host: str, token: str, f: Fault, timeout_s: float = 5.0) -> tuple[int, dict[str, Any]]:
    """POST one fault; returns (HTTP status, body). Status 0 when the stack cannot be reached."""
    body = json.dumps({"kind": f.kind, "target": f.target, "magnitude": f.magnitude,
                       "duration_s": f.duration_s}).encode()
    req = urllib.request.Request(host.rstrip("/") + "/admin/faults", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        status, raw, _ = fetch(req, timeout_s)
    except OSError as e:
        return 0, {"error": {"message": str(e)}}
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, {}


class FaultDriver:
    """Applies `faults` on the run's clock (seconds since `t0`); `sleep` is gevent's in Locust."""

    def __init__(self, faults: Sequence[Fault], host: str, token: str, t0: float, event: EventFn,
                 sleep: Callable[[float], None], clock: Callable[[], float] = time.time) -> None:
        self.faults = sorted(faults, key=lambda f: f.at_s)
        self.host, self.token, self.t0 = host, token, t0
        self.event, self.sleep, self.clock = event, sleep, clock
        self.applied = 0

    def _until(self, t_s: float) -> None:
        delay = self.t0 + t_s - self.clock()
        if delay > 0:
            self.sleep(delay)

    def run(self) -> None:
        """Apply every fault at its time (blocks until the last one is applied)."""
        for f in self.faults:
            self._until(f.at_s)
            status, body = post_fault(self.host, self.token, f)
            now = self.clock() - self.t0
            detail = {"fault_kind": f.kind, "magnitude": f.magnitude, "duration_s": f.duration_s,
                      "planned_s": f.at_s, "lag_s": round(now - f.at_s, 6), "status": status}
            if 200 <= status < 300:
                self.applied += 1
                self.event(now, "fault_start", f.target, **detail)
                self.event(f.at_s + f.duration_s, "fault_end", f.target, fault_kind=f.kind)
            else:
                msg = (body.get("error") or {}).get("message", "") if isinstance(body, dict) else ""
                self.event(now, "fault_error", f.target, **detail, message=str(msg)[:200])
