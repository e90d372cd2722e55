"""Data files a scenario names (empirical distributions, arrival traces): one reader for all.

The same functions serve `surge validate` and every engine, so a file that validates is a file
that runs. They are bounded and say nothing of what the file holds:

- a data path must resolve (symbolic links followed) inside the data folder: the scenario's
  folder unless the caller names another (`data_dir`); `../../etc/passwd` or an absolute path
  elsewhere is refused before anything is opened;
- a file is at most `MAX_DATA_BYTES` (checked before reading), UTF-8, CSV or JSON Lines;
- only the named column is kept (as floats), so memory is one float per row;
- messages name the file, the column and the row, never a value or a line of the file.

Errors are `DataFileError` (a `ValueError`, so pydantic reports it at the field that names the
file); results are cached on (path, size, modification time).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO

MAX_DATA_BYTES = 64_000_000  # ~5 million rows of a few columns; the shipped trace is 34 KB


class DataFileError(ValueError):
    """A data file is missing, outside the data folder, too large or malformed."""


def resolve_data_path(file: str, base_dir: str | Path, data_dir: str | Path | None = None) -> Path:
    """The file named `file` (relative to `base_dir`), refused unless it lies inside `data_dir`
    (default: `base_dir`) once links are followed."""
    root = Path(data_dir if data_dir is not None else base_dir).resolve()
    if "\x00" in file:
        raise DataFileError("file name contains a NUL character")
    path = (Path(base_dir) / file).resolve()
    if not path.is_relative_to(root):
        raise DataFileError(f"{_q(file)} is outside the data folder {root} (data files must lie under it)")
    if path.is_dir():
        raise DataFileError(f"{_q(file)} is a folder, expected a CSV or JSONL file")
    if not path.is_file():
        raise DataFileError(f"file not found: {_q(file)}")
    size = path.stat().st_size
    if size > MAX_DATA_BYTES:
        raise DataFileError(f"{_q(file)} is {size:,} bytes (at most {MAX_DATA_BYTES:,})")
    return path


def read_column(path: Path, column: str) -> tuple[float, ...]:
    """Numeric values (finite, >= 0) of `column` in a CSV or JSONL file, in file order."""
    st = path.stat()
    return _read_column(str(path), column, st.st_size, st.st_mtime_ns)


def read_datetime_column(path: Path, column: str) -> tuple[float, ...]:
    """ISO 8601 timestamps of `column`, as seconds after the first row's. All rows must agree on
    carrying a time zone or not (offsets may differ: they are compared as instants)."""
    st = path.stat()
    return _read_datetimes(str(path), column, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=32)
def _read_column(path: str, column: str, _size: int, _mtime_ns: int) -> tuple[float, ...]:
    name = Path(path).name
    values: list[float] = []
    for row, raw in _cells(Path(path), column):
        v = _number(raw)
        if v is None:
            raise DataFileError(f"column {_q(column)} of {name}, line {row} is not a number")
        if not math.isfinite(v) or v < 0:
            raise DataFileError(f"column {_q(column)} of {name}, line {row} is negative or not finite")
        values.append(v)
    if not values:
        raise DataFileError(f"column {_q(column)} of {name} has no rows")
    return tuple(values)


@lru_cache(maxsize=8)
def _read_datetimes(path: str, column: str, _size: int, _mtime_ns: int) -> tuple[float, ...]:
    name = Path(path).name
    stamps: list[datetime] = []
    for row, raw in _cells(Path(path), column):
        try:
            if not isinstance(raw, str) or len(raw) > 64:
                raise ValueError
            stamps.append(datetime.fromisoformat(raw))  # digits beyond microseconds are cut
        except ValueError:
            raise DataFileError(f"column {_q(column)} of {name}, line {row} is not an ISO 8601 datetime") from None
        if (stamps[-1].tzinfo is None) != (stamps[0].tzinfo is None):
            raise DataFileError(f"column {_q(column)} of {name}, line {row} mixes times with and without a time zone")
    if not stamps:
        raise DataFileError(f"column {_q(column)} of {name} has no rows")
    t0 = stamps[0]
    return tuple((s - t0).total_seconds() for s in stamps)


def _cells(path: Path, column: str) -> Iterator[tuple[int, Any]]:
    """(line number in the file, raw cell) of `column`, for each data row."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            if path.suffix == ".jsonl":
                yield from _jsonl_cells(f, column, path.name)
            else:
                yield from _csv_cells(f, column, path.name)
    except UnicodeDecodeError:
        raise DataFileError(f"{path.name} is not UTF-8 text") from None
    except OSError as e:
        raise DataFileError(f"{path.name} cannot be read ({e.strerror})") from None


def _csv_cells(f: TextIO, column: str, name: str) -> Iterator[tuple[int, Any]]:
    reader = csv.reader(f)
    try:
        header = next(reader, None)
        if header is None or column not in header:
            n = len(header) if header else 0
            raise DataFileError(f"column {_q(column)} not in {name} (its header has {n} columns)")
        i = header.index(column)
        for row in reader:
            if not row:
                continue  # a blank line
            if i >= len(row):
                raise DataFileError(f"column {_q(column)} of {name}, line {reader.line_num} has {len(row)} fields")
            yield reader.line_num, row[i]
    except csv.Error as e:
        raise DataFileError(f"line {reader.line_num} of {name} is not valid CSV ({e})") from None


def _jsonl_cells(f: TextIO, column: str, name: str) -> Iterator[tuple[int, Any]]:
    for n, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            raise DataFileError(f"line {n} of {name} is not valid JSON") from None
        if not isinstance(obj, dict):
            raise DataFileError(f"line {n} of {name} is not a JSON object (each line must be one row, "
                                f"an object with a {_q(column)} key)")
        if column not in obj:
            raise DataFileError(f"column {_q(column)} not in {name} (line {n} has {len(obj)} keys)")
        yield n, obj[column]


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float) or (isinstance(raw, str) and len(raw) <= 40):
        try:
            return float(raw)
        except (ValueError, OverflowError):
            return None
    return None


def _q(name: str) -> str:
    """A name from the scenario as messages quote it: repr, cut to 60 characters."""
    r = repr(name)
    return r if len(r) <= 60 else r[:57] + "..."
