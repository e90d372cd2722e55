"""Field types that follow JSON Schema exactly, as the OpenAPI spec promises clients.

Pydantic's strict mode refuses `120.0` for an integer, which JSON Schema calls an integer;
its lax mode accepts `"120"` and `"yes"`, which JSON Schema does not. These types take the
JSON meaning: numbers must be JSON numbers (an integral float is an integer), booleans must
be JSON booleans. Constraints go inside the type (`Int(ge=1)`) so that they show up in the
schema as `minimum`/`maximum` also when the field is optional.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictBool


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
