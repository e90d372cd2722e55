"""Reading a scenario file: YAML once, `--set` overrides, then validation into frozen objects.

Every failure becomes one `ScenarioError` naming the file, the field path, what was
expected and what was found.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sim.errors import ScenarioError
from sim.scenario.safe_yaml import MAX_DEPTH, YamlRefused, load_bounded, parse_yaml
from sim.scenario.schema import Scenario

MAX_SCENARIO_BYTES = 1_000_000  # the largest shipped scenario is ~6 KB
_FIELD_PREFIX = re.compile(r"^[a-z_][a-z0-9_]*: ")


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = (), seed: int | None = None,
                  data_dir: str | Path | None = None) -> Scenario:
    """Parse and validate a scenario file (or a shipped scenario by name, `sim.shipped`).
    `overrides` are `path.to.field=value` (value in YAML); data files must lie in the scenario's
    folder, or in `data_dir` when given."""
    from sim.shipped import resolve

    p = resolve(path)
    data = read_yaml(p)
    for item in overrides:
        apply_override(data, item, file=str(p))
    if seed is not None:
        data.setdefault("run", {})
        if not isinstance(data["run"], dict):
            raise ScenarioError("expected a mapping", file=str(p), path="run")
        data["run"]["seed"] = seed
    return parse_scenario(data, file=str(p), base_dir=p.parent, data_dir=data_dir)


def read_yaml(p: Path) -> dict[str, Any]:
    """The raw mapping of a scenario file (bounded: see `sim.scenario.safe_yaml`)."""
    if p.is_dir():
        raise ScenarioError("is a folder, expected a scenario file", file=str(p))
    if not p.is_file():
        raise ScenarioError("is not a regular file" if p.exists() else "file not found", file=str(p))
    if p.stat().st_size > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"file is larger than {MAX_SCENARIO_BYTES:,} bytes", file=str(p))
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError("not UTF-8 text", file=str(p)) from None
    except OSError as e:
        raise ScenarioError(f"cannot be read ({e.strerror})", file=str(p)) from None
    data = parse_yaml(text, str(p))
    if data is None:
        raise ScenarioError("empty file: expected a scenario mapping", file=str(p))
    if not isinstance(data, dict):
        raise ScenarioError(f"expected a mapping at the top level (got {type(data).__name__})", file=str(p))
    return data


def parse_scenario(data: dict[str, Any], file: str = "<scenario>", base_dir: Path | None = None,
                   data_dir: str | Path | None = None) -> Scenario:
    """Validate a raw mapping. Data files are relative to `base_dir` and must lie inside
    `data_dir` (default: `base_dir`), see `sim.datafiles`."""
    base = str(base_dir or Path("."))
    root = str(data_dir) if data_dir is not None else None
    try:
        sc = Scenario.model_validate(data, context={"base_dir": base, "data_dir": root})
    except ValidationError as e:
        raise ScenarioError(_describe(e.errors(include_url=False)[0]), file=file) from None
    except RecursionError:
        raise ScenarioError("nested too deeply to validate", file=file) from None
    sc._base_dir = base
    sc._data_dir = root
    return sc


def _describe(err: Any) -> str:
    """One pydantic error as `field.path: what was expected (got VALUE)`, in plain words."""
    loc = ".".join(_cut(str(x), 40) for x in err["loc"] if not _is_union_tag(x))
    msg = err["msg"].removeprefix("Value error, ")
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{loc}: unknown key"
    if kind == "missing":
        return f"{loc}: required field is missing"
    if kind == "value_error" and msg.split(":")[0].count(".") >= 1 and " " not in msg.split(":")[0]:
        return msg  # a cross-field rule that already names its path
    if kind == "value_error" and _FIELD_PREFIX.match(msg):
        return f"{loc}.{msg}" if loc else msg  # a rule on the mapping that names one of its keys
    if kind == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        return f"{loc}.type: must be one of {ctx.get('expected_tags')} (got {ctx.get('tag')!r})"
    if kind == "union_tag_not_found":
        return f"{loc}.type: required field is missing"
    where = f"{loc}: " if loc else ""
    msg = _plain(msg)
    found = err.get("input")
    if "(got " in msg or isinstance(found, dict):
        return f"{where}{msg}"  # the rule already shows the value, or the value is a whole mapping
    return f"{where}{msg} (got {shown(found)})"


def shown(x: Any) -> str:
    """A value as an error message shows it: short, and never by serialising a whole structure."""
    if isinstance(x, list | tuple):
        return f"a list of {len(x)} items"
    if isinstance(x, dict):
        return f"a mapping of {len(x)} keys"
    if isinstance(x, str):
        return json.dumps(_cut(x, 57))
    if isinstance(x, int) and not isinstance(x, bool):
        digits = len(str(abs(x))) if abs(x) < 10**60 else None
        return str(x) if digits is not None else "an integer of more than 60 digits"
    if isinstance(x, bytes | bytearray):
        return f"{len(x)} bytes of binary data"
    return _cut(json.dumps(x, default=lambda v: type(v).__name__), 60)


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


_PLAIN = (
    ("Input should be", "must be"), ("greater than or equal to", ">="), ("greater than", ">"),
    ("less than or equal to", "<="), ("less than", "<"),
    ("Dictionary should have", "must have"), ("Tuple should have", "must have"), ("List should have", "must have"),
    (" after validation", ""), ("Keys should be strings", "keys must be text"),
)


def _plain(msg: str) -> str:
    """Pydantic's wording in the attrs style: `must be > 0`, `must be a mapping`."""
    for a, b in _PLAIN:
        msg = msg.replace(a, b)
    if msg.startswith("must be a valid dictionary"):
        return "must be a mapping"
    return msg.replace("must be a valid tuple", "must be a list")


def _is_union_tag(x: object) -> bool:
    """Pydantic puts the discriminator value or model name in the location path; drop it."""
    return isinstance(x, str) and (x[:1].isupper() or x in _DIST_TAGS)


_DIST_TAGS = {
    "constant", "exponential", "uniform", "lognormal", "gamma", "weibull", "pareto", "empirical", "mixture",
    "roofline", "fitted", "local", "openai",
}


def apply_override(data: dict[str, Any], item: str, file: str = "<override>") -> None:
    """Set `a.b.0.c=value` in the raw mapping; the value is parsed as YAML (`3`, `true`, `[1,2]`)."""
    if "=" not in item:
        raise ScenarioError(f"override must look like path.to.field=value (got {_cut(item, 60)!r})", file=file)
    key, raw = item.split("=", 1)
    parts = [k for k in key.strip().split(".") if k]
    if not parts:
        raise ScenarioError(f"override has an empty path (got {_cut(item, 60)!r})", file=file)
    key = ".".join(_cut(k, 40) for k in parts)  # as messages show it
    if len(parts) > MAX_DEPTH:
        raise ScenarioError(f"override path has {len(parts)} parts (at most {MAX_DEPTH})", file=file, path=_cut(key, 80))
    try:
        value = load_bounded(raw)
    except YamlRefused as e:
        if e.syntax:
            raise ScenarioError(f"override value is not valid YAML (got {_cut(raw, 60)!r})", file=file, path=key) from None
        raise ScenarioError(f"override value: {e}", file=file, path=key) from None
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, _cut(".".join(parts[: i + 1]), 80), file, create=True)
    last = parts[-1]
    if isinstance(node, list):
        idx = _index(node, last, key, file)
        node[idx] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ScenarioError(f"cannot set a field inside a {type(node).__name__}", file=file, path=key)


def _child(node: Any, part: str, where: str, file: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, where, file)]
    if isinstance(node, dict):
        if part not in node or node[part] is None:
            if not create:
                raise ScenarioError("no such field", file=file, path=where)
            node[part] = {}
        return node[part]
    raise ScenarioError(f"cannot descend into a {type(node).__name__}", file=file, path=where)


def _index(node: list[Any], part: str, where: str, file: str) -> int:
    digits = part.removeprefix("-")
    if not (digits.isascii() and digits.isdigit() and len(digits) < 19) or not -len(node) <= int(part) < len(node):
        raise ScenarioError(f"list index out of range (list has {len(node)} items, got {_cut(part, 40)!r})",
                            file=file, path=where)
    return int(part)


def json_schema() -> dict[str, Any]:
    """JSON Schema of a scenario file, for editors and `surge schema`."""
    return Scenario.model_json_schema(mode="validation")
