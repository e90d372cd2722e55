"""YAML for untrusted scenario text: bounded in time and memory before any Python object is built.

A first pass walks the parser's event stream (a state machine, no recursion) and refuses, at
the first offending event:

- more than `MAX_NODES` values, counting every alias as the size of what it points to (so an
  alias bomb, "billion laughs", is refused after a few hundred events, not after 2 GB);
- nesting deeper than `MAX_DEPTH` (counting what aliases bring in).

Only then is the text composed and constructed (with the C parser where PyYAML has it), by a
constructor that refuses duplicate mapping keys and integer literals longer than Python
converts. Every refusal is one `ScenarioError` that names the line, never the expanded input.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from sim.errors import ScenarioError


class YamlRefused(Exception):
    """Text that is not one bounded YAML value; `syntax` tells a syntax error from a refusal."""

    def __init__(self, message: str, syntax: bool = False) -> None:
        super().__init__(message)
        self.syntax = syntax

MAX_NODES = 20_000  # the largest shipped scenario has 459; each value costs ~1 KB to validate
MAX_DEPTH = 32  # the deepest shipped field (a mixture inside a stage) is ~10 levels down

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # type: ignore[assignment]


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader, refusing duplicate keys and over-long integers."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicates(self, node)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)  # type: ignore[no-any-return]
        except ValueError:
            raise YamlRefused(f"line {node.start_mark.line + 1}: integer literal of more than "
                              f"{sys.get_int_max_str_digits()} digits") from None


def _no_binary(loader: _Loader, node: yaml.Node) -> None:
    raise YamlRefused(f"line {node.start_mark.line + 1}: binary data (!!binary) has no place in a scenario")


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:binary", _no_binary)
# the base class registers its construct_yaml_map, which calls construct_mapping: ours, by MRO


def _refuse_duplicates(loader: _Loader, node: yaml.MappingNode) -> None:
    seen: dict[Any, str] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *defaults` is meant to be overridden by the keys next to it
        key = loader.construct_object(key_node, deep=True)
        line = f"line {key_node.start_mark.line + 1}, column {key_node.start_mark.column + 1}"
        try:
            first = seen.get(key)
        except TypeError:
            continue  # an unhashable key: the base constructor says so
        if first is not None:
            raise YamlRefused(f"{line}: duplicate key {_brief(key)} (first given at {first})")
        seen[key] = line


def parse_yaml(text: str, where: str = "<yaml>") -> Any:
    """The value of one YAML document, or one `ScenarioError` naming `where` and the line."""
    try:
        return load_bounded(text)
    except YamlRefused as e:
        raise ScenarioError(str(e), file=where) from None


def load_bounded(text: str) -> Any:
    """The value of one YAML document; `YamlRefused` when it is malformed or too large."""
    try:
        check_size(text)
        loader = _Loader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise YamlRefused(_syntax(e), syntax=True) from None


def check_size(text: str) -> None:
    """Refuse text whose values, aliases expanded, are too many or nested too deep."""
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (values, depth) of the anchored node
    open_: list[tuple[str | None, int, int]] = []  # collections being read: (anchor, values before, depth)
    nodes = depth = 0
    deepest = [0]
    for ev in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(ev, yaml.AliasEvent):
            if any(ev.anchor == a for a, _, _ in open_):
                raise YamlRefused(f"line {_line(ev)}: alias *{_cut(str(ev.anchor), 40)} "
                                  "refers to a collection that contains it")
            n, d = sizes.get(str(ev.anchor), (1, 0))
            nodes += n
            _check(nodes, depth + d, ev)
            deepest[-1] = max(deepest[-1], depth + d)
        elif isinstance(ev, yaml.ScalarEvent):
            nodes += 1
            if ev.anchor:
                sizes[ev.anchor] = (1, 0)
            _check(nodes, depth, ev)
        elif isinstance(ev, yaml.CollectionStartEvent):
            open_.append((ev.anchor, nodes, depth))
            nodes += 1
            depth += 1
            deepest.append(depth)
            _check(nodes, depth, ev)
        elif isinstance(ev, yaml.CollectionEndEvent):
            anchor, before, depth = open_.pop()
            inner = deepest.pop()
            deepest[-1] = max(deepest[-1], inner)
            if anchor:
                sizes[anchor] = (nodes - before, inner - depth)


def _line(ev: yaml.Event) -> int:
    return ev.start_mark.line + 1 if ev.start_mark else 0


def _check(nodes: int, depth: int, ev: yaml.Event) -> None:
    line = _line(ev)
    if nodes > MAX_NODES:
        raise YamlRefused(f"line {line}: more than {MAX_NODES:,} values (aliases expanded): not a scenario")
    if depth > MAX_DEPTH:
        raise YamlRefused(f"line {line}: nested more than {MAX_DEPTH} levels deep (aliases expanded)")


def _syntax(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    kind = "error" if isinstance(e, yaml.constructor.ConstructorError) else "syntax error"
    return f"YAML {kind}{where}: {_cut(str(problem), 120)}"


def _brief(x: Any) -> str:
    """A key as it may appear in a message: its repr, cut to 40 characters."""
    return _cut(repr(x), 40)


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."
