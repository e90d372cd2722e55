"""One error type for the stack, rendered as OpenAI-style bodies:
`{"error": {"message", "type", "param", "code"}}`, for every 4xx and 5xx."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed_request",
    500: "server_error",
    502: "upstream_error",
    503: "overloaded_error",
    504: "timeout_error",
}


# Parts of a pydantic error location that name no field: where the value came from, and the
# tags of discriminated unions (the fault kinds), which would read as bogus field names.
_NOT_FIELDS = {"body", "query", "path", "header", "capacity_loss", "slowdown", "error_rate", "outage",
               "session_invalidation", "wrong_item"}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """What every error response carries."""

    error: ErrorDetail


class APIError(Exception):
    """An error the API reports on purpose; `headers` carry e.g. Retry-After (seconds)."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        # a message may quote the client's input: keep it encodable whatever was sent (a lone
        # surrogate in a field name would otherwise fail the response: a 500)
        message = message.encode("utf-8", "backslashreplace").decode()
        param = param.encode("utf-8", "backslashreplace").decode() if param else param
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}
        self.extra: dict[str, Any] = {}  # more for a stream's error event (an agent command's order and ledger)

    def body(self) -> dict[str, Any]:
        kind = _TYPES.get(self.status, "invalid_request_error" if self.status < 500 else "server_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def retry_after(status: int, message: str, code: str, seconds: float) -> APIError:
    """An overload error telling the client when to come back (whole seconds, at least 1)."""
    return APIError(status, message, code, headers={"Retry-After": str(max(1, round(seconds + 0.499)))})


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": desc}
    for code, desc in {
        400: "invalid request (malformed JSON, wrong types, limits exceeded)",
        401: "missing or invalid token",
        404: "not found",
        408: "the request body did not arrive in time",
        413: "request body too large",
        429: "rate limited (see Retry-After)",
        503: "overloaded or unavailable (see Retry-After)",
        504: "deadline passed before the work finished",
    }.items()
}


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def _is_union_tag(part: object) -> bool:
    """A part of a pydantic error location naming a member of a union (`str`,
    `list[TextPart]`, `function-after[...]`), not a field."""
    return isinstance(part, str) and (part in _TYPE_TAGS or "[" in part)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errs = exc.errors()
    if not errs:
        return "invalid request", None
    e = errs[0]
    loc0 = tuple(e.get("loc", ()))
    cut = next((i for i, p in enumerate(loc0) if _is_union_tag(p)), None)
    if cut is not None:  # a union: one error per member; the deepest says most (e.g. the list's item)
        e = max((x for x in errs if tuple(x.get("loc", ()))[:cut] == loc0[:cut]), key=lambda x: len(x.get("loc", ())))
    loc = [str(p) for p in e.get("loc", ()) if p not in _NOT_FIELDS and not _is_union_tag(p)]
    param = ".".join(loc) or None
    if e.get("type") == "json_invalid":
        return "request body is not valid JSON", None
    msg = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
    got = e.get("input")
    shown = json.dumps(got, default=str)[:80] if got is not None and not isinstance(got, dict) else None
    text = f"'{param}': {msg}" if param else msg
    return (f"{text} (got {shown})" if shown else text), param


def install_handlers(app: FastAPI) -> None:
    """Route every error FastAPI or Starlette raises through the OpenAI error shape."""

    @app.exception_handler(APIError)
    async def _api(_: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        msg, param = _validation_message(exc)
        return APIError(400, msg, "invalid_value", param).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return APIError(exc.status_code, str(exc.detail), None, headers=dict(exc.headers or {})).response()

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        # A bug, not a client mistake: keep the body in shape, say nothing internal.
        return APIError(500, "internal server error", "internal_error").response()
