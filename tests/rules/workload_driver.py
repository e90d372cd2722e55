"""For each scenario file given, one attempt of every class through the load test's client
against a recording stand-in: prints (scenario, class, path, class named in the request,
its stages' kinds, whether it places orders) per class. Runs in its own process (the load test's client uses gevent)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from loadtest.commands import HttpClient  # noqa: E402
from loadtest.http_commands import CLASS_HEADER, HttpCommand  # noqa: E402
from loadtest.plan import Plan  # noqa: E402
from loadtest.tally import Tally  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    def request(self, method: str, path: str, name: str = "", json: Any = None, headers: Any = None,
                **kw: Any) -> Any:
        self.seen.append((path, json or {}, headers or {}))
        raise OSError("recorded")  # the attempt ends as a broken connection; we only look


for file in sys.argv[1:]:
    sc = load_scenario(file)
    rec = Recorder()
    wl = HttpClient(sc, Plan("-", "http://127.0.0.1:1", "-"), Tally(10, 10), rec, "w")
    for spec in wl.specs:
        rec.seen.clear()
        sess = wl.new_session("u")
        sess.token = "t"
        wl._guarded(lambda spec=spec, sess=sess, wl=wl: wl._attempt(sess, HttpCommand(spec, 0.0)))
        path, body, headers = rec.seen[0]
        named = body.get("class") if path.endswith("commands") else headers.get(CLASS_HEADER)
        kinds = tuple("llm" if st.llm is not None else "tool" for st in spec.cls.stages)
        print(repr((sc.name, spec.name, path, named, kinds, spec.cls.places_order)))
