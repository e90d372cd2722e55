"""Fixtures for the load-test tests: one reference stack on loopback shared by the tests of a
module (Locust itself always runs in subprocesses)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loadtest_helpers import ADMIN, STACK_OPTIONS, TINY, USER_SECRET

from loadtest.credentials import Credentials
from loadtest.procs import StackProcess


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    folder = tmp_path_factory.mktemp("stack")
    s = StackProcess(TINY, folder, Credentials(ADMIN, USER_SECRET), options=STACK_OPTIONS).start()
    try:
        yield s
    finally:
        s.stop()
