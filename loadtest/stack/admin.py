"""Operations routes: fault injection (admin token), health, readiness, metrics."""

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from loadtest.stack.auth import require_admin
from loadtest.stack.edge import HEALTHZ_BODY
from loadtest.stack.errors import ERROR_RESPONSES, APIError
from loadtest.stack.jsontypes import Float
from loadtest.stack.state import Stack

admin_scheme = HTTPBearer(auto_error=False, description="admin token (env SURGE_ADMIN_TOKEN)")


def fault_request_model(targets: list[str]) -> Any:
    """The body of POST /admin/faults: one shape per kind, so the spec states each kind's
    valid magnitudes and targets (a discriminated union on `kind`)."""
    target_t = Literal[tuple(targets)]  # type: ignore[valid-type]
    duration_t = Float(gt=0, le=86_400)

    class _Fault(BaseModel):
        model_config = ConfigDict(extra="forbid")
        target: target_t = Field(description="service the fault hits")  # type: ignore[valid-type]
        duration_s: duration_t = Field(description="seconds the fault lasts")  # type: ignore[valid-type]

    class CapacityLoss(_Fault):
        kind: Literal["capacity_loss"]
        magnitude: Float(ge=0, le=1) = Field(default=1.0, description="fraction of capacity lost")  # type: ignore[valid-type]

    class Slowdown(_Fault):
        kind: Literal["slowdown"]
        magnitude: Float(ge=1, le=1000) = Field(default=2.0, description="latency multiplier")  # type: ignore[valid-type]

    class ErrorRate(_Fault):
        kind: Literal["error_rate"]
        magnitude: Float(ge=0, le=1) = Field(default=1.0, description="probability a call fails")  # type: ignore[valid-type]

    class Outage(_Fault):
        kind: Literal["outage"]
        magnitude: Float(ge=0, le=1) = Field(default=1.0, description="ignored")  # type: ignore[valid-type]

    class SessionInvalidation(_Fault):
        kind: Literal["session_invalidation"]
        target: Literal["auth"] = "auth"
        magnitude: Float(ge=0, le=1) = Field(default=1.0, description="fraction of the current sessions lost")  # type: ignore[valid-type]

    class WrongItem(_Fault):
        kind: Literal["wrong_item"]
        magnitude: Float(ge=0, le=1) = Field(default=1.0, description="probability an order gets the wrong item")  # type: ignore[valid-type]

    return Annotated[CapacityLoss | Slowdown | ErrorRate | Outage | SessionInvalidation | WrongItem,
                     Field(discriminator="kind")]


class FaultOut(BaseModel):
    id: int
    kind: str
    target: str
    magnitude: float
    starts_at: float = Field(description="unix seconds")
    ends_at: float = Field(description="unix seconds")


class FaultList(BaseModel):
    faults: list[FaultOut]


def make_router(stack: Stack) -> APIRouter:
    router = APIRouter()
    fault_body = fault_request_model(stack.faults.targets)

    async def admin(request: Request, _: Any = Depends(admin_scheme)) -> None:  # async: no thread pool hop
        require_admin(request, stack.opts.admin_token)

    @router.post("/admin/faults", status_code=201, response_model=FaultOut, tags=["admin"],
                 responses=ERROR_RESPONSES, dependencies=[Depends(admin)], summary="Inject a fault")
    async def add_fault(fault: fault_body) -> dict[str, Any]:  # type: ignore[valid-type]
        body: Any = fault
        why = stack.faults.check(body.kind, body.target, body.magnitude)
        if why:
            raise APIError(400, why, "invalid_fault", "target" if "target" in why else "magnitude")
        return asdict(stack.add_fault(body.kind, body.target, body.magnitude, body.duration_s))

    @router.get("/admin/faults", response_model=FaultList, tags=["admin"], responses=ERROR_RESPONSES,
                dependencies=[Depends(admin)], summary="Active faults")
    async def list_faults() -> dict[str, Any]:
        return {"faults": [asdict(f) for f in stack.faults.active()]}

    @router.delete("/admin/faults", tags=["admin"], responses=ERROR_RESPONSES, dependencies=[Depends(admin)],
                   summary="Clear all faults")
    async def clear_faults() -> dict[str, int]:
        return {"cleared": stack.faults.clear()}

    @router.delete("/admin/faults/{fault_id}", status_code=204, tags=["admin"], responses=ERROR_RESPONSES,
                   dependencies=[Depends(admin)], summary="Clear one fault")
    async def clear_fault(fault_id: Annotated[int, Path(ge=0, le=2**62)]) -> Response:
        if not stack.faults.remove(fault_id):
            raise APIError(404, f"no active fault {fault_id}", "fault_not_found", "fault_id")
        return Response(status_code=204)

    @router.get("/admin/ledger", tags=["admin"], responses=ERROR_RESPONSES, dependencies=[Depends(admin)],
                 summary="Money and stock: payments, duplicates prevented, refunds, units held and sold")
    async def ledger() -> dict[str, Any]:
        out = await stack.store.ledger()
        out["inventory"] = {name: await s.state() for name, s in stack.stocks.items()}
        return out

    @router.get("/healthz", tags=["ops"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        """Documents the route: `edge.Edge` answers it before the app (cheap under overload)."""
        return HEALTHZ_BODY

    @router.get("/readyz", tags=["ops"], summary="Readiness: 503 while starting, draining or with no replica up",
                responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        h = stack.health()
        if h["ready"] and h.get("replicas_up", 1) > 0:
            return JSONResponse(h)
        reason = "draining" if h["draining"] else "starting" if not h["ready"] else "no LLM replica up"
        return JSONResponse(h | APIError(503, f"not ready: {reason}", "not_ready").body(), status_code=503)

    @router.get("/metrics", tags=["ops"], response_class=PlainTextResponse, summary="Prometheus metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(stack.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return router
