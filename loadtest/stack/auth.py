"""Sessions: HMAC-signed tokens `<payload>.<signature>`, checked in constant time.

Signed tokens need no session table, so a restarted stack still honours sessions it issued
(as a stack with an external session store would). A `session_invalidation` fault of magnitude
f rejects a fraction f of the tokens issued before it, as the simulator does: the tokens whose
stable hash of (config seed, invalidation epoch, token payload) falls below f. Which sessions go
is decided by the token and the seed alone (blake2b, never Python's `hash()`), so a session
lost stays lost, and independent invalidations compound (kept with probability prod(1 - f)).
That is what sends a share of the population back to login at once.
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


VALID, FOREIGN, EXPIRED, INVALIDATED = "valid", "foreign", "expired", "invalidated"


def unit_hash(seed: int, epoch: int, session_id: str) -> float:
    """A stable uniform number in [0, 1) for (seed, epoch, session id)."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{session_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class TokenSessions:
    """Issues and verifies session tokens valid for `ttl_s` seconds; `seed` decides which
    sessions a partial `session_invalidation` takes."""

    def __init__(self, secret: str, ttl_s: float, faults: FaultBoard, seed: int = 0) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()
        self.ttl_s, self.faults, self.seed = ttl_s, faults, seed

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:18])

    def issue(self, user: str) -> str:
        now = time.time()
        body = json.dumps({"u": user, "iat": now, "exp": now + self.ttl_s, "n": secrets.token_hex(4)},
                          separators=(",", ":"))
        payload = _b64(body.encode())
        return f"{payload}.{self._sign(payload)}"

    def inspect(self, token: str) -> tuple[str | None, str]:
        """(user, state): state is VALID, EXPIRED, INVALIDATED (lost to a session_invalidation)
        or FOREIGN (not a token this stack signed: another API key)."""
        payload, _, sig = token.partition(".")
        if not sig or not hmac.compare_digest(sig.encode(), self._sign(payload).encode()):
            return None, FOREIGN
        try:
            claims = json.loads(_unb64(payload))
            user, iat, exp = str(claims["u"]), float(claims["iat"]), float(claims["exp"])
        except (ValueError, KeyError, TypeError):
            return None, FOREIGN
        if exp <= time.time():
            return user, EXPIRED
        if self._lost(payload, iat):
            return user, INVALIDATED
        return user, VALID

    def verify(self, token: str) -> str | None:
        """The user of a valid, unexpired, not invalidated token; else None."""
        user, state = self.inspect(token)
        return user if state == VALID else None

    def _lost(self, session_id: str, issued_at: float) -> bool:
        for epoch, (at, fraction) in enumerate(self.faults.invalidations):
            if issued_at < at and unit_hash(self.seed, epoch, session_id) < fraction:
                return True
        return False


def bearer(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _missing() -> APIError:
    return APIError(401, "missing session token (Authorization: Bearer <token> from /v1/auth/login)",
                    "missing_token", headers={"WWW-Authenticate": "Bearer"})


def _invalid() -> APIError:
    return APIError(401, "invalid or expired session token; log in again", "invalid_token",
                    headers={"WWW-Authenticate": "Bearer"})


def require_session(request: Request, sessions: TokenSessions) -> str:
    """The session's user; 401 when the token is missing, wrong, expired or invalidated."""
    token = bearer(request)
    if token is None:
        raise _missing()
    user = sessions.verify(token)
    if user is None:
        raise _invalid()
    return user


def chat_session(request: Request, sessions: TokenSessions, required: bool) -> str | None:
    """The session user of a chat request, or None for a caller without one of this stack's
    sessions. A token this stack signed is always checked (401 when expired or invalidated, so
    a session invalidation reaches chat as it reaches agent commands); any other bearer token is
    an API key (plain OpenAI clients), refused only when `required`."""
    token = bearer(request)
    if token is None:
        if required:
            raise _missing()
        return None
    user, state = sessions.inspect(token)
    if state == VALID:
        return user
    if state != FOREIGN or required:
        raise _invalid()
    return None


def require_admin(request: Request, admin_token: str) -> None:
    """401 unless the request carries the admin bearer token (constant-time compare)."""
    token = bearer(request) or ""
    if not admin_token or not hmac.compare_digest(token.encode(), admin_token.encode()):
        raise APIError(401, "admin token required", "invalid_admin_token", headers={"WWW-Authenticate": "Bearer"})
