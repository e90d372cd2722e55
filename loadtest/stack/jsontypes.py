"""Field types that follow JSON Schema exactly, as the OpenAPI spec promises clients.

Pydantic's strict mode refuses `120.0` for an integer, which JSON Schema calls an integer;
its lax mode accepts `"120"` and `"yes"`, which JSON Schema does not. These types take the
JSON meaning: numbers must be JSON numbers (an integral float is an integer), booleans must
be JSON booleans. Constraints go inside the type (`Int(ge=1)`) so that they show up in the
schema as `minimum`/`maximum` also when the field is optional.

Strings must be Unicode text: JSON lets a client write a lone surrogate (`"x\\ud800y"`), which
no UTF-8 encoder (tokenizer, hash, SQLite, response) accepts. `Text` refuses it where it
arrives, naming the field, so nothing further in can fail on it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StrictBool


def _json_number(v: Any) -> Any:
    if isinstance(v, (str, bool, bytes)):
        raise ValueError(f"must be a JSON number (got {type(v).__name__})")
    return v


def Int(**constraints: Any) -> Any:  # noqa: N802 - reads as a type in annotations
    """An integer field type with `Field` constraints (ge, le, ...)."""
    return Annotated[int, Field(**constraints), BeforeValidator(_json_number)]


def Float(**constraints: Any) -> Any:  # noqa: N802
    """A finite float field type with `Field` constraints."""
    return Annotated[float, Field(allow_inf_nan=False, **constraints), BeforeValidator(_json_number)]


Bool = StrictBool


def unicode_text(v: str) -> str:
    """`v` if it encodes as UTF-8; ValueError naming where the first lone surrogate is."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"must be Unicode text (a lone surrogate at character {e.start})") from None
    return v


def Text(**constraints: Any) -> Any:  # noqa: N802
    """A string field type of valid Unicode text (no lone surrogates) with `Field` constraints."""
    return Annotated[str, Field(**constraints), AfterValidator(unicode_text)]
