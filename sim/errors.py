"""One exception tree for surge. The CLI catches `SurgeError` in one place and prints
`Type: message` on one line with the error's exit code (2 for a user's mistake, 3 for an
unreachable target); anything else is a bug and keeps its traceback (exit code 1)."""

from __future__ import annotations


class SurgeError(Exception):
    """Base of every error surge raises on purpose: a user's mistake (exit code 2) unless a
    subclass says otherwise."""

    exit_code = 2


class ScenarioError(SurgeError):
    """A scenario file (or an override) is not valid.

    The message names the file, the field path, what was expected and what was found.
    """

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None) -> None:
        self.file = file
        self.path = path
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message)


class ResultsError(SurgeError):
    """A results folder is missing, incomplete or in an unknown format."""


class TargetError(SurgeError):
    """The system under test cannot be reached or does not behave as the protocol says (found
    by a preflight, before any load is sent): exit code 3."""

    exit_code = 3


class SimulationError(SurgeError):
    """A run could not be carried out (e.g. the engine was asked for something it cannot do)."""
