"""Where load may go: loopback only, unless the user says otherwise (`--allow-remote`).

Only `--host` is named by the user, so nothing the load test sends follows a redirect: the
probes, fault posts and Locust's requests all take a 3xx as the answer (a redirect could point
anywhere). `preflight` checks the target before any load is sent.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from sim.errors import SurgeError, TargetError

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class LoadTestError(SurgeError):
    """A load run was refused or could not be carried out."""


def is_loopback(host: str) -> bool:
    """True when `host` (a name or an address) is this machine's loopback."""
    h = host.strip("[]").lower()
    if h in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_host(url: str, allow_remote: bool = False) -> str:
    """The base URL, normalised; raises `LoadTestError` for a bad URL or, without
    `allow_remote`, for any host that is not loopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadTestError(f"'--host' must be an http(s) URL such as http://127.0.0.1:8000 (got {url!r})")
    try:
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError:
        raise LoadTestError(f"'--host' has a port outside 1..65535 (got {url!r})") from None
    if not allow_remote and not is_loopback(parts.hostname):
        raise LoadTestError(f"'--host' {parts.hostname!r} is not loopback: load goes only to 127.0.0.1/::1 "
                            "unless you pass --allow-remote")
    return url.rstrip("/")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kw: Any) -> None:
        return None  # the 3xx itself is the answer


_OPENER = urllib.request.build_opener(_NoRedirect)


def fetch(req: urllib.request.Request | str, timeout_s: float) -> tuple[int, bytes, dict[str, str]]:
    """One HTTP exchange that never follows a redirect: (status, body, headers); raises OSError
    when the target cannot be reached."""
    try:
        with _OPENER.open(req, timeout=timeout_s) as r:  # noqa: S310 - the host was checked by check_host
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read() or b"", dict(e.headers or {})


def preflight(host: str, timeout_s: float = 5.0) -> str | None:
    """Check the target before any load: it must answer, and not with a redirect or a 5xx.
    Returns the first model it serves (`/v1/models`, OpenAI-compatible), or None. Raises
    `TargetError` (exit code 3) naming what is wrong."""
    url = host.rstrip("/") + "/v1/models"
    try:
        status, body, headers = fetch(url, timeout_s)
    except OSError as e:
        reason = getattr(e, "reason", None) or e
        raise TargetError(f"'--host' {host} cannot be reached ({reason}); nothing was sent") from None
    if 300 <= status < 400:
        raise TargetError(f"'--host' {host} answered {status} redirecting to {headers.get('Location', '?')!r}; "
                          "the load test follows no redirect: give the final address") from None
    if status >= 500:
        raise TargetError(f"'--host' {host} answered {status} to GET /v1/models; nothing was sent")
    if status != 200:
        return None  # no model list (not OpenAI-compatible there): chat requests name --model
    try:
        data = json.loads(body).get("data") or []
        return str(data[0]["id"]) if data else None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
