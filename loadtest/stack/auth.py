"""Sessions: HMAC-signed tokens `<payload>.<signature>`, checked in constant time.

Signed tokens need no session table, so a restarted stack still honours sessions it issued
(as a stack with an external session store would); a `session_invalidation` fault rejects
every token issued before it, which is what sends a whole population back to login at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

from fastapi import Request

from loadtest.stack.errors import APIError
from loadtest.stack.faults import FaultBoard


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Issues and verifies session tokens valid for `ttl_s` seconds."""

    def __init__(self, secret: str, ttl_s: float, faults: FaultBoard) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()
        self.ttl_s, self.faults = ttl_s, faults

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:18])

    def issue(self, user: str) -> str:
        now = time.time()
        body = json.dumps({"u": user, "iat": now, "exp": now + self.ttl_s, "n": secrets.token_hex(4)},
                          separators=(",", ":"))
        payload = _b64(body.encode())
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str) -> str | None:
        """The user of a valid, unexpired, not invalidated token; else None."""
        payload, _, sig = token.partition(".")
        if not sig or not hmac.compare_digest(sig.encode(), self._sign(payload).encode()):
            return None
        try:
            claims = json.loads(_unb64(payload))
            user, iat, exp = str(claims["u"]), float(claims["iat"]), float(claims["exp"])
        except (ValueError, KeyError, TypeError):
            return None
        if exp <= time.time() or iat < self.faults.sessions_invalid_before:
            return None
        return user


def bearer(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def require_session(request: Request, sessions: Sessions) -> str:
    """The session's user; 401 when the token is missing, wrong, expired or invalidated."""
    token = bearer(request)
    if token is None:
        raise APIError(401, "missing session token (Authorization: Bearer <token> from /v1/auth/login)",
                       "missing_token", headers={"WWW-Authenticate": "Bearer"})
    user = sessions.verify(token)
    if user is None:
        raise APIError(401, "invalid or expired session token; log in again", "invalid_token",
                       headers={"WWW-Authenticate": "Bearer"})
    return user


def require_admin(request: Request, admin_token: str) -> None:
    """401 unless the request carries the admin bearer token (constant-time compare)."""
    token = bearer(request) or ""
    if not admin_token or not hmac.compare_digest(token.encode(), admin_token.encode()):
        raise APIError(401, "admin token required", "invalid_admin_token", headers={"WWW-Authenticate": "Bearer"})
