"""Where load may go: loopback only, unless the user says otherwise (`--allow-remote`)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from sim.errors import SurgeError

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
    if not allow_remote and not is_loopback(parts.hostname):
        raise LoadTestError(f"'--host' {parts.hostname!r} is not loopback: load goes only to 127.0.0.1/::1 "
                            "unless you pass --allow-remote")
    return url.rstrip("/")
