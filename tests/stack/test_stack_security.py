"""Sessions, logins and the admin API hold against a hostile client (regressions: tokens were
signed with a hard-coded secret, so a forged token read and placed another user's orders;
login ignored passwords; the admin token defaulted to `surge-admin`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from stack_helpers import ADMIN, ROOT, chat_body, credentials, free_port, login, running, tiny_config

from loadtest.credentials import password_for
from loadtest.stack import StackOptions
from loadtest.stack.options import OptionsError

pytestmark = pytest.mark.anyio
SECRET = "test-session-secret"
BUY = {"command": "help me buy a milk tea"}
CHAT = "/v1/chat/completions"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(secret: str, user: str, exp_in_s: float = 3600.0) -> str:
    """A token signed as the stack signs them (HMAC-SHA256 of the payload), with `secret`."""
    now = time.time()
    payload = _b64(json.dumps({"u": user, "iat": now, "exp": now + exp_in_s, "n": "00"}).encode())
    key = hashlib.sha256(secret.encode()).digest()
    return f"{payload}.{_b64(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:18])}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _every_route(client: httpx.AsyncClient, headers: dict[str, str], order_id: str) -> dict[str, int]:
    """The status of each route that takes a session token, with `headers`."""
    return {
        "agent": (await client.post("/v1/agent/commands", json=BUY, headers=headers | {"Idempotency-Key": "f1"})).status_code,
        "agent_stream": (await client.post("/v1/agent/commands", json=BUY | {"stream": True},
                                           headers=headers | {"Idempotency-Key": "f2"})).status_code,
        "order": (await client.get(f"/v1/orders/{order_id}", headers=headers)).status_code,
        "chat": (await client.post(CHAT, json=chat_body(), headers=headers)).status_code,
        "admin": (await client.get("/admin/faults", headers=headers)).status_code,
    }


@pytest.mark.parametrize("kind", ["forged_other_secret", "forged_hard_coded", "tampered", "unsigned", "expired"])
async def test_forged_and_expired_tokens_are_refused_on_every_route(tmp_path: Path, kind: str) -> None:
    cfg = tiny_config(tmp_path, session_secret=SECRET, chat_requires_session=True)
    async with running(cfg) as client:
        alice = await login(client, "alice")
        order = (await client.post("/v1/agent/commands", json=BUY, headers=alice | {"Idempotency-Key": "a"})).json()
        real = alice["Authorization"].split()[1]
        token = {
            "forged_other_secret": _token("guessed", "alice"),
            "forged_hard_coded": _token("surge-dev-secret", "alice"),
            "tampered": _b64(json.dumps({"u": "alice", "iat": 0, "exp": 9e12}).encode()) + "." + real.split(".")[1],
            "unsigned": real.split(".")[0] + ".",
            "expired": _token(SECRET, "alice", exp_in_s=-1),
        }[kind]
        got = await _every_route(client, _bearer(token), order["order"]["id"])
        assert got == dict.fromkeys(got, 401), got


async def test_a_token_of_this_stack_works_and_the_signing_is_what_the_test_forges(tmp_path: Path) -> None:
    """The forging above is the stack's real scheme: a token made with the right secret is accepted."""
    async with running(tiny_config(tmp_path, session_secret=SECRET)) as client:
        r = await client.post("/v1/agent/commands", json=BUY, headers=_bearer(_token(SECRET, "alice")) | {"Idempotency-Key": "k"})
        assert r.status_code == 200, r.text


async def test_another_users_token_sees_none_of_alices_orders(tmp_path: Path) -> None:
    async with running(tiny_config(tmp_path)) as client:
        alice, bob = await login(client, "alice"), await login(client, "bob")
        a = (await client.post("/v1/agent/commands", json=BUY, headers=alice | {"Idempotency-Key": "same"})).json()
        assert (await client.get(f"/v1/orders/{a['order']['id']}", headers=bob)).status_code == 404
        b = await client.post("/v1/agent/commands", json=BUY, headers=bob | {"Idempotency-Key": "same"})
        assert b.status_code == 200 and b.headers.get("Idempotent-Replayed") is None  # bob's own, new order
        assert b.json()["order"]["id"] != a["order"]["id"]
        assert (await client.get(f"/v1/orders/{a['order']['id']}", headers=alice)).status_code == 200


async def test_a_token_from_another_deployment_is_refused(tmp_path: Path) -> None:
    """Each deployment signs with its own secret: generated unless given."""
    assert StackOptions().session_secret != StackOptions().session_secret
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with running(tiny_config(tmp_path / "a")) as a, running(tiny_config(tmp_path / "b")) as b:
        token = await login(a, "alice")
        assert (await a.get("/v1/orders/ord_x", headers=token)).status_code == 404
        assert (await b.get("/v1/orders/ord_x", headers=token)).status_code == 401


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURGE_SESSION_SECRET", "from-env-s")
    monkeypatch.setenv("SURGE_ADMIN_TOKEN", "from-env-a")
    monkeypatch.setenv("SURGE_USER_SECRET", "from-env-u")
    o = StackOptions()
    assert (o.session_secret, o.admin_token, o.user_secret) == ("from-env-s", "from-env-a", "from-env-u")


@pytest.mark.parametrize("field", ["admin_token", "session_secret", "user_secret"])
def test_an_empty_secret_is_refused(field: str) -> None:
    with pytest.raises(OptionsError, match=field):
        StackOptions(**{field: ""})


@pytest.mark.parametrize(("body", "status"), [
    ({"username": "alice", "password": "wrong"}, 401),
    ({"username": "alice"}, 400),
    ({"username": "alice", "password": ""}, 400),
    ({"username": "alice", "password": password_for("another-secret", "alice")}, 401),
    ({"username": "alice", "password": password_for("test-users", "bob")}, 401),  # bob's password
])
async def test_login_checks_the_password(client: httpx.AsyncClient, body: dict, status: int) -> None:
    r = await client.post("/v1/auth/login", json=body)
    assert r.status_code == status, r.text
    if status == 401:
        assert r.json()["error"]["code"] == "invalid_credentials"
    assert (await client.post("/v1/auth/login", json=credentials("alice"))).status_code == 200


async def test_the_admin_api_needs_the_admin_token(client: httpx.AsyncClient) -> None:
    for h in ({}, {"Authorization": "Bearer surge-admin"}, {"Authorization": "Bearer test-admi"},
              await login(client)):
        assert (await client.get("/admin/faults", headers=h)).status_code == 401, h
    assert (await client.get("/admin/faults", headers=ADMIN)).status_code == 200


@pytest.mark.slow
def test_a_stack_started_without_secrets_generates_them_and_says_where(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SURGE_")} | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "loadtest.stack", "--port", str(port), "--db",
                             str(tmp_path / "state" / "orders.db"), "--options-json", '{"torch_threads": 1}'],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stderr.readline() for _ in range(2)]  # type: ignore[union-attr]
        found = re.search(r"in (\S+credentials\.env)", lines[1])
        assert found, lines
        creds = Path(found.group(1))
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        values = dict(line.split("=", 1) for line in creds.read_text().split())
        token = values["SURGE_ADMIN_TOKEN"]
        assert len(token) >= 32 and token not in "".join(lines)  # printed: the file, never the secret
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(url + "/admin/faults", headers=_bearer(token)).status_code == 200
        assert httpx.get(url + "/admin/faults", headers=_bearer("surge-admin")).status_code == 401
        user = "lt-user"
        pw = password_for(values["SURGE_USER_SECRET"], user)
        assert httpx.post(url + "/v1/auth/login", json={"username": user, "password": pw}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(15)


def test_an_empty_admin_token_stops_the_stack_with_one_line(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "loadtest.stack", "--port", str(free_port()), "--db",
                        str(tmp_path / "o.db"), "--options-json", '{"admin_token": ""}'],
                       cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("OptionsError: 'admin_token'"), r.stderr
