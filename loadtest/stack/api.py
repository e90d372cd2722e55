"""Routes of the agent app: login, agent commands, orders."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.background import BackgroundTask

from loadtest.credentials import check_password
from loadtest.stack.agent import Agent, Started, order_view
from loadtest.stack.auth import chat_session, require_session
from loadtest.stack.disconnect import while_connected
from loadtest.stack.errors import ERROR_RESPONSES, APIError, retry_after
from loadtest.stack.gateway import behind_admission, client_key, mark_admitted, parse_deadline
from loadtest.stack.jsontypes import Bool, Int, Text
from loadtest.stack.services import ServiceError
from loadtest.stack.state import Stack
from sim.funnel import OUTCOMES

session_scheme = HTTPBearer(auto_error=False, description="session token from /v1/auth/login")
_ERRORS_WITH_CONFLICT = {**ERROR_RESPONSES,
                         409: ERROR_RESPONSES[400] | {"description": "an inventory answer: inventory_conflict or "
                                                                     "hold_expired (retry later), sold_out"},
                         422: ERROR_RESPONSES[400] | {"description": "Idempotency-Key reused with another command"}}


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Text(min_length=1, max_length=128)  # type: ignore[valid-type]
    password: Text(min_length=1, max_length=256) = Field(  # type: ignore[valid-type]
        description="the user's password (the stack's user table: loadtest.credentials)")


class LoginResponse(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_in: float = Field(description="seconds until the token expires")
    user: str


class FirstCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt_tokens: Int(ge=0, le=1_000_000)  # type: ignore[valid-type]
    max_tokens: Int(ge=1, le=1_000_000)  # type: ignore[valid-type]


class AgentCommandBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: Text(min_length=1, max_length=2000) = Field(examples=["help me buy a milk tea"])  # type: ignore[valid-type]
    stream: Bool = Field(default=False, description="server-sent progress events, then the result")
    first_call: FirstCall | None = Field(default=None, description="the lengths of the command's first LLM call "
                                         "(new prompt tokens, tokens to generate): a replayed trace row's, as the "
                                         "simulator gives them (`sim.rules.calls.trace_lengths`); default: drawn "
                                         "from the class's distributions")


def agent_command_model(classes: list[str], funnel_classes: list[str]) -> type[AgentCommandBase]:
    """The request schema naming this stack's command classes (so OpenAPI tells them), with
    `outcome` only when a class has a funnel (elsewhere it is an unknown field: 400)."""
    klass: Any = Literal[tuple(classes)] | None if classes else None  # type: ignore[valid-type]
    field = Field(default=None, alias="class", description="the scenario's command class whose stages run "
                  "(default: the most likely order-placing class)")
    fields: dict[str, Any] = {"klass": (klass, field)}
    if funnel_classes:
        fields["outcome"] = (Literal[OUTCOMES] | None, Field(  # type: ignore[valid-type]
            default=None, description=f"for a class with a funnel ({', '.join(funnel_classes)}; another class: 400): "
            "the outcome the client's user drew (sim.funnel); only that outcome's stages run, out_of_stock places "
            "nothing, payment_error charges nothing (default: every stage, the order placed and paid)"))
    return create_model("AgentCommand", __base__=AgentCommandBase, **fields)  # type: ignore[call-overload]


class Order(BaseModel):
    id: str
    status: str = Field(description="pending, placed, paid or completed; or how a command ended without an "
                        "order: changed_mind, no_card, out_of_stock, payment_error (unpaid)")
    sku: str | None
    item: str | None
    price_cents: int | None
    payment_id: str | None
    created_at: float
    updated_at: float
    idempotency_key: str | None
    attempts: int | None
    wrong_item: bool = Field(default=False, description="the order got the wrong item (an operational mistake)")


class AttemptLedger(BaseModel):
    charged: int = Field(description="payments this attempt took (0 or 1)")
    duplicates_prevented: int = Field(description="payment calls that found the order paid already")
    refunds: int = Field(description="orders this attempt refunded (paid, then sold out)")


class LLMCallTiming(BaseModel):
    ttft_s: float = Field(description="seconds from submitting the call to its first token")
    tpot_s: float | None = Field(description="seconds per output token after the first: (last - first token) / "
                                 "(output_tokens - 1); null for one token or a call that failed")
    prompt_tokens: int
    output_tokens: int
    end_s: float = Field(description="seconds from the attempt's start to the call's last token")


class Timing(BaseModel):
    llm_s: float = Field(description="seconds in LLM calls")
    total_s: float = Field(description="seconds of the whole attempt")
    llm_calls: list[LLMCallTiming] = Field(description="every LLM call that produced tokens, in order")


class AgentResult(BaseModel):
    order: Order | None = Field(description="the order (null for a class that places none)")
    answer: str | None
    usage: dict[str, int] | None = Field(description="LLM tokens this attempt used; null on replay")
    timing: Timing | None = Field(default=None, description="null on replay")
    ledger: AttemptLedger | None = Field(default=None, description="what this attempt did to the money; null on "
                                                                   "replay or for a class that places no order")
    outcome: str | None = Field(default=None, description="the funnel's outcome: ordered (placed and paid), "
                                "changed_mind, no_card, out_of_stock or payment_error; null for a class that "
                                "places no order")


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class AgentStream:
    """An agent command's progress as server-sent events. The work starts at once, not when
    the response starts streaming: an order-placing command runs to the end even if its client
    leaves (the order finishes so that a retry replays it); a command that places no order
    stops when its client leaves (`close`)."""

    def __init__(self, agent: Agent, started: Started, command: str, deadline: float | None) -> None:
        self.events: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.places_order = started.row is not None
        self.task = asyncio.get_running_loop().create_task(self._work(agent, started, command, deadline))

    async def _progress(self, stage: str, llm_call: dict[str, Any] | None = None) -> None:
        self.events.put_nowait(_sse("progress", {"stage": stage} if llm_call is None else
                                    {"stage": stage, "llm_call": llm_call}))

    async def _work(self, agent: Agent, started: Started, command: str, deadline: float | None) -> None:
        try:
            body = await agent.finish(started, command, deadline, self._progress)
            self.events.put_nowait(_sse("result", body))
        except APIError as e:
            self.events.put_nowait(_sse("error", e.body() | {"status": e.status} | e.extra))
        finally:
            self.events.put_nowait(None)

    async def body(self) -> AsyncIterator[bytes]:
        while (item := await self.events.get()) is not None:
            yield item
        await self.task
        yield b"data: [DONE]\n\n"

    async def close(self) -> None:
        """After the response, however it ended: a command that places no order stops."""
        if not self.places_order and not self.task.done():
            self.task.cancel()


def make_router(stack: Stack) -> APIRouter:
    """The stack's auth and agent routes (chat and admin routes live in their own modules)."""
    router = APIRouter()
    _add_login(router, stack)
    _add_agent(router, stack)
    return router


def _add_login(router: APIRouter, stack: Stack) -> None:
    @router.post("/v1/auth/login", response_model=LoginResponse, tags=["auth"], responses=ERROR_RESPONSES,
                 summary="Log in and get a session token")
    async def login(body: LoginRequest, request: Request) -> JSONResponse:
        deadline = parse_deadline(request)
        stack.gateway.rate_limit("user:" + body.username)

        async def issue() -> str:
            # checked inside the auth service's call: a failed login costs what a good one does
            if not check_password(stack.opts.user_secret, body.username, body.password):
                raise APIError(401, "wrong username or password", "invalid_credentials", "password",
                               headers={"WWW-Authenticate": "Bearer"})
            return stack.sessions.issue(body.username)

        try:
            token = await stack.auth.call(issue, deadline) if stack.auth else await issue()
        except ServiceError as e:
            if e.code == "timeout":
                raise APIError(504, "the auth service did not answer in time", "auth_timeout") from None
            raise retry_after(503, f"the auth service is unavailable ({e.code})", f"auth_{e.code}",
                              e.retry_after_s) from None
        # a JSONResponse, not a dict: FastAPI would validate it against LoginResponse (which stays
        # for the docs) on every login, and a login storm is when logins must be cheapest
        return JSONResponse({"token": token, "token_type": "bearer", "expires_in": stack.sessions.ttl_s,
                             "user": body.username})


def _add_agent(router: APIRouter, stack: Stack) -> None:
    agent = Agent(stack)
    command_model = agent_command_model(sorted(agent.classes), sorted(n for n in agent.classes
                                                                      if agent.funnel.has_funnel(n)))
    sessions_required = stack.auth is not None  # a scenario without auth has no sessions to check

    @router.post("/v1/agent/commands", response_model=AgentResult, tags=["agent"], summary="Run an agent command",
                 responses={**_ERRORS_WITH_CONFLICT, 200: {"content": {"text/event-stream": {}}}},
                 dependencies=[Depends(behind_admission)])
    async def command(body: command_model, request: Request,  # type: ignore[valid-type]
                      idempotency_key: Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200)],
                      _: Any = Depends(session_scheme)):
        user = (require_session(request, stack.sessions) if sessions_required
                else chat_session(request, stack.sessions, False) or client_key(request))
        deadline = parse_deadline(request)
        stack.gateway.rate_limit("user:" + user)
        req: Any = body
        # a client gone while its command waits for admission leaves the queue
        first = (req.first_call.prompt_tokens, req.first_call.max_tokens) if req.first_call else None
        started = await while_connected(request, agent.start(user, idempotency_key, req.command, deadline, req.klass,
                                                             getattr(req, "outcome", None), first))
        if started.replay is not None:
            return JSONResponse(started.replay, headers={"Idempotent-Replayed": "true"})
        assert started.ticket is not None
        mark_admitted(request, started.ticket)
        if req.stream:
            stream = AgentStream(agent, started, req.command, deadline)
            return StreamingResponse(stream.body(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"}, background=BackgroundTask(stream.close))
        work = agent.finish(started, req.command, deadline)
        # an order in progress finishes even if its client has gone (a retry replays it); other work stops
        result = await (work if started.row is not None else while_connected(request, work))
        t = result["timing"]
        return JSONResponse(result, headers={"Server-Timing": f"llm;dur={t['llm_s'] * 1e3:.3f}, "
                                                              f"app;dur={t['total_s'] * 1e3:.3f}"})

    @router.get("/v1/orders/{order_id}", response_model=Order, tags=["agent"], responses=ERROR_RESPONSES,
                summary="An order of the session's user")
    async def get_order(order_id: Annotated[str, Path(max_length=64)], request: Request,
                        _: Any = Depends(session_scheme)) -> dict[str, Any]:
        user = (require_session(request, stack.sessions) if sessions_required  # as the command named its user
                else chat_session(request, stack.sessions, False) or client_key(request))
        row = await stack.store.get(order_id)
        if row is None or row["user_id"] != user:  # another user's order is as good as missing
            raise APIError(404, f"no order '{order_id[:64]}'", "order_not_found", "order_id")
        return order_view(row)
