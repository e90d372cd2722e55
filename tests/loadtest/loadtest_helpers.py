"""Shared constants of the load-test tests (a uniquely named module: every test folder has a
conftest.py, so `from conftest import ...` would be ambiguous)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
TINY = HERE / "tiny.yaml"
ADMIN = "loadtest-test-admin"
USER_SECRET = "loadtest-test-users"
# one torch thread: the stack shares two CPU cores with Locust and the other test suites
STACK_OPTIONS = {"torch_threads": 1}
