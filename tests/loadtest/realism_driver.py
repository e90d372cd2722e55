"""Prints, as Python literals, what the load test's client sends for a chat-like class and a
plugin class (run in its own process: the client uses gevent)."""

from __future__ import annotations

import json
import sys
from json import loads
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from loadtest import plugins  # noqa: E402
from loadtest.answers import _produced as produced  # noqa: E402
from loadtest.commands import HttpClient  # noqa: E402
from loadtest.http_commands import HttpCommand  # noqa: E402
from loadtest.plan import Plan  # noqa: E402
from loadtest.tally import Tally  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402

HERE = Path(__file__).resolve().parent


class Recorder:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def request(self, method: str, path: str, name: str = "", json: Any = None, data: Any = None, headers: Any = None,
                **kw: Any) -> Any:
        body = json if data is None else loads(data)  # a chat body is sent as its JSON bytes
        self.seen.append({"path": path, "body": body, "headers": dict(headers or {}), "kw": sorted(kw)})
        raise OSError("recorded")


endpoint = sys.argv[1]
sc = load_scenario(HERE / "tiny.yaml")
plan = Plan("-", "http://127.0.0.1:1", "-", endpoint=endpoint, api_key="sk-test", headers={"X-Team": "qa"},
            plugins=[str(HERE / "plugin_example.py")])
plugins.load(plan.plugins, list(sc.workload.classes))
rec = Recorder()
wl = HttpClient(sc, plan, Tally(10, 10), rec, "w")
sess = wl.new_session("u")
chat = next(s for s in wl.specs if s.name == "chat")
buy = next(s for s in wl.specs if s.name == "help_me_buy")
for spec in (chat, chat, buy):
    wl._guarded(lambda spec=spec: wl._attempt(sess, HttpCommand(spec, 0.0)))
deltas = [{"delta": {"reasoning_content": "hmm"}}, {"delta": {"tool_calls": [{"index": 0}]}}, {"text": "x"},
          {"delta": {"content": ""}}, {"delta": {"role": "assistant"}}]
print(json.dumps({"seen": rec.seen, "produced": [produced(d) for d in deltas]}))
