"""Reading a scenario file: YAML once, `--set` overrides, then validation into frozen objects.

Every failure becomes one `ScenarioError` naming the file, the field path, what was
expected and what was found.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sim.errors import ScenarioError
from sim.scenario.schema import Scenario

_MAX_BYTES = 10_000_000
_FIELD_PREFIX = re.compile(r"^[a-z_][a-z0-9_]*: ")


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = (), seed: int | None = None) -> Scenario:
    """Parse and validate a scenario file (or a shipped scenario by name, `sim.shipped`).
    `overrides` are `path.to.field=value` (value in YAML)."""
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
    return parse_scenario(data, file=str(p), base_dir=p.parent)


def read_yaml(p: Path) -> dict[str, Any]:
    if not p.is_file():
        raise ScenarioError("file not found", file=str(p))
    if p.stat().st_size > _MAX_BYTES:
        raise ScenarioError(f"file is larger than {_MAX_BYTES} bytes", file=str(p))
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ScenarioError(f"YAML syntax error at {where}{problem}", file=str(p)) from None
    except UnicodeDecodeError:
        raise ScenarioError("not UTF-8 text", file=str(p)) from None
    if data is None:
        raise ScenarioError("empty file: expected a scenario mapping", file=str(p))
    if not isinstance(data, dict):
        raise ScenarioError(f"expected a mapping at the top level (got {type(data).__name__})", file=str(p))
    return data


def parse_scenario(data: dict[str, Any], file: str = "<scenario>", base_dir: Path | None = None) -> Scenario:
    base = str(base_dir or Path("."))
    try:
        sc = Scenario.model_validate(data, context={"base_dir": base})
    except ValidationError as e:
        raise ScenarioError(_describe(e.errors()[0]), file=file) from None
    sc._base_dir = base
    return sc


def _describe(err: Any) -> str:
    """One pydantic error as `field.path: what was expected (got VALUE)`, in plain words."""
    loc = ".".join(str(x) for x in err["loc"] if not _is_union_tag(x))
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
    shown = json.dumps(found, default=str)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{where}{msg} (got {shown})"


_PLAIN = (
    ("Input should be", "must be"), ("greater than or equal to", ">="), ("greater than", ">"),
    ("less than or equal to", "<="), ("less than", "<"),
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
        raise ScenarioError(f"override must look like path.to.field=value (got {item!r})", file=file)
    key, raw = item.split("=", 1)
    parts = [k for k in key.strip().split(".") if k]
    if not parts:
        raise ScenarioError(f"override has an empty path (got {item!r})", file=file)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ScenarioError(f"override value is not valid YAML (got {raw!r})", file=file, path=key) from None
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: i + 1]), file, create=True)
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
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise ScenarioError(f"list index out of range (list has {len(node)} items, got {part!r})", file=file, path=where)
    return int(part)


def json_schema() -> dict[str, Any]:
    """JSON Schema of a scenario file, for editors and `surge schema`."""
    return Scenario.model_json_schema(mode="validation")
