"""The secrets of one reference-stack deployment, and how the load test gets them.

- admin token (`SURGE_ADMIN_TOKEN`): the bearer token of `/admin/*` (fault injection).
- session secret (`SURGE_SESSION_SECRET`): the HMAC key that signs session tokens; it never
  leaves the stack.
- user secret (`SURGE_USER_SECRET`): seeds the stack's user table. User NAME's password is
  `password_for(user_secret, NAME)`, so the table needs no storage and holds any name the load
  test invents, and only whoever holds the user secret (the operator, the load test) can log in.

Each is taken from the environment or generated (`new_secret`) per deployment; `surge loadtest
--start-stack` generates all three and hands them to the stack and to Locust through the
environment (never a command line, where `ps` shows it). Against a stack started by hand, export
the values the stack wrote to its credentials file (`python -m loadtest.stack` prints where).

The passwords are 128-bit random strings derived by HMAC-SHA256, so a fast keyed check is as
strong as a slow password hash would be for human passwords, and a login storm costs the stack
no more CPU than the scenario's auth service models.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ADMIN_ENV, SESSION_ENV, USERS_ENV = "SURGE_ADMIN_TOKEN", "SURGE_SESSION_SECRET", "SURGE_USER_SECRET"


def new_secret() -> str:
    """A fresh random secret (256 bits, hex)."""
    return secrets.token_hex(32)


def password_for(user_secret: str, user: str) -> str:
    """The password of `user` in the user table seeded by `user_secret`."""
    msg = b"surge-user:" + user.encode("utf-8", "surrogatepass")
    return hmac.new(user_secret.encode(), msg, hashlib.sha256).hexdigest()[:32]


def check_password(user_secret: str, user: str, password: str) -> bool:
    """Whether `password` is `user`'s (constant time)."""
    given = password.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(given, password_for(user_secret, user).encode())


@dataclass(frozen=True)
class Credentials:
    """What a load generator needs to drive a stack: the admin token (faults) and the user
    secret (logins). None where it is not known (the target then refuses those calls)."""

    admin_token: str | None = None
    user_secret: str | None = None

    @classmethod
    def from_env(cls) -> Credentials:
        return cls(os.environ.get(ADMIN_ENV) or None, os.environ.get(USERS_ENV) or None)

    @classmethod
    def for_new_stack(cls) -> Credentials:
        """The environment's values, else new ones (for a stack this run starts)."""
        env = cls.from_env()
        return cls(env.admin_token or new_secret(), env.user_secret or new_secret())

    def env(self) -> dict[str, str]:
        """The environment variables that carry these credentials to a child process."""
        out = {ADMIN_ENV: self.admin_token, USERS_ENV: self.user_secret}
        return {k: v for k, v in out.items() if v}

    def password(self, user: str) -> str:
        """`user`'s password, or "" when the user secret is not known (the login fails)."""
        return password_for(self.user_secret, user) if self.user_secret else ""


def write_env_file(path: Path, values: dict[str, str]) -> Path:
    """Write `NAME=value` lines readable by the owner only (mode 0600, created so: the secret
    is never world-readable, not even for an instant)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write("".join(f"{k}={v}\n" for k, v in values.items()))
    return path
