"""Schemathesis against the stack's own OpenAPI spec, on a real server, with bounded examples.

Every operation gets valid (positive) and invalid (negative) requests; all default checks
run (no 5xx for client mistakes, status codes, content types and bodies as documented).
Admin routes get the admin token, the others a session token; deadlines are short so that a
fault the fuzzer injects (e.g. a 1000x slowdown) ends requests with a documented 504.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from stack_helpers import Server, credentials

EXAMPLES = 12  # per operation and mode: ~10 operations x 2 modes stays well under 30 s


def _headers(path: str, session: str) -> dict[str, str]:
    token = "test-admin" if path.startswith("/admin") else session
    return {"Authorization": f"Bearer {token}", "X-Request-Timeout": "2"}


def _fuzz(op, mode, url: str, headers: dict[str, str]) -> None:
    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def check(case):
        if mode == GenerationMode.POSITIVE and case.headers and "Idempotency-Key" in case.headers:
            # a key reused with another command is a documented 422 a stateless fuzzer cannot foresee
            case.headers["Idempotency-Key"] = uuid.uuid4().hex
        case.call_and_validate(base_url=url, headers=headers, timeout=10)

    try:
        check()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE  # nothing to get wrong in an operation without inputs


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi_spec(tmp_path, mode):
    server = Server(tmp_path, ["services.gateway.concurrency=8", "services.gateway.queue_limit=64"]).start()
    try:
        session = httpx.post(server.url + "/v1/auth/login", json=credentials("fuzz")).json()["token"]
        schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
        failures: list[str] = []
        for result in schema.get_all_operations():
            op = result.ok()
            try:
                _fuzz(op, mode, server.url, _headers(op.path, session))
            except Exception as e:  # collect: one report for all operations
                failures.append(f"{op.label}: {str(e)[:1500]}")
        httpx.delete(server.url + "/admin/faults", headers={"Authorization": "Bearer test-admin"})
        assert not failures, "\n\n".join(failures)
    finally:
        server.stop()
