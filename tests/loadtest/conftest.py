"""Fixtures for the load-test tests: the tiny scenario and one reference stack on loopback
shared by the tests of a module (Locust itself always runs in subprocesses)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.procs import StackProcess

HERE = Path(__file__).resolve().parent
TINY = HERE / "tiny.yaml"
ADMIN = "loadtest-test-admin"
# one torch thread: the stack shares two CPU cores with Locust and the other test suites
STACK_CONFIG = {"llm": {"torch_threads": 1}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    folder = tmp_path_factory.mktemp("stack")
    s = StackProcess(TINY, folder, ADMIN, config=STACK_CONFIG).start()
    try:
        yield s
    finally:
        s.stop()
