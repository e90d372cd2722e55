"""OpenAI-compatible chat completions (`/v1/chat/completions`, `/v1/models`).

Unknown OpenAI parameters are accepted and ignored (clients send many); known ones are
checked strictly (wrong types are 400, never coerced). Generation always runs to
`max_tokens` (finish_reason "length"): output sizes are what the load test asks for.

Sessions: a bearer token this stack issued (`/v1/auth/login`) is checked as a session — 401
when expired or invalidated, as for agent commands, so a session invalidation reaches chat
users the way the simulator has it; any other token is an API key that names the caller for
rate limits (plain OpenAI clients), unless `StackOptions.chat_requires_session`.
"""

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.background import BackgroundTask

from loadtest.stack.auth import chat_session
from loadtest.stack.disconnect import while_connected
from loadtest.stack.errors import ERROR_RESPONSES, APIError
from loadtest.stack.gateway import Slot, behind_admission, client_key, mark_admitted, parse_deadline
from loadtest.stack.jsontypes import Bool, Float, Int, Text
from loadtest.stack.llm import Generation, LLMError, Message
from loadtest.stack.state import Stack

CLASS_HEADER = "X-Surge-Class"  # the scenario command class a chat request belongs to (its priority)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: Text()  # type: ignore[valid-type]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text() | list[TextPart] | None = None  # type: ignore[valid-type]

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: Bool = False


class ChatRequestBase(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: Text(min_length=1, max_length=200)  # type: ignore[valid-type]
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    temperature: Float(ge=0, le=2) | None = None  # type: ignore[valid-type]
    stream: Bool = False
    stream_options: StreamOptions | None = None
    n: Int(ge=1, le=1) | None = Field(default=None, description="only 1 is supported")  # type: ignore[valid-type]


def chat_request_model(max_tokens_cap: int) -> type[ChatRequestBase]:
    """The request schema with this stack's `max_tokens` cap in it (so OpenAPI tells it)."""
    limit: Any = (Int(ge=1, le=max_tokens_cap) | None, None)
    return create_model("ChatCompletionRequest", __base__=ChatRequestBase,
                        max_tokens=limit, max_completion_tokens=limit)  # type: ignore[call-overload]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


def usage_of(g: Generation) -> dict[str, int]:
    return {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens,
            "total_tokens": g.prompt_tokens + g.completion_tokens}


def llm_error(e: LLMError) -> APIError:
    """The API error for a failed generation (503s say when to retry)."""
    msg = {"deadline_exceeded": "deadline passed before generation finished",
           "replica_down": "no LLM replica available", "overloaded": "LLM replicas overloaded",
           "upstream_error": "the upstream model server failed"}.get(e.code, "generation failed")
    headers = {"Retry-After": str(max(1, round(e.retry_after_s)))} if e.status == 503 else None
    return APIError(e.status, msg, e.code, headers=headers)


def sse(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def sse_stream(g: Generation, slot: Slot, head: dict[str, Any], include_usage: bool,
                     chunk: Callable[[str, str | None], bytes], opening: bytes | None = None) -> AsyncIterator[bytes]:
    """A streamed answer (chat or text completion, `chunk` shapes one piece): the pieces, the
    finish, the usage if asked, an error in-band (the headers are gone, as OpenAI does), then
    `[DONE]`; the gateway slot is released however the stream ends."""
    try:
        if opening is not None:
            yield opening
        async for piece in g:
            yield chunk(piece, None)
        yield chunk("", g.finish_reason)
        if include_usage:
            yield sse({**head, "choices": [], "usage": usage_of(g)})
    except LLMError as e:
        yield sse(llm_error(e).body())
    finally:
        slot.release()
    yield sse("[DONE]")


def _stream(g: Generation, ticket: Slot, head: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        return sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]})

    return sse_stream(g, ticket, head, include_usage,
                      lambda piece, finish: chunk({"content": piece} if finish is None else {}, finish),
                      opening=chunk({"role": "assistant", "content": ""}, None))


def make_router(stack: Stack) -> APIRouter:
    router = APIRouter(tags=["chat"])
    body_model = chat_request_model(stack.opts.max_tokens_cap)
    cancel = stack.deadlines.servers_cancel()
    require = stack.opts.chat_requires_session

    @router.get("/v1/models", summary="List models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": stack.llm.model_name, "object": "model", "created": 0,
                                            "owned_by": "surge"}]}

    @router.post("/v1/chat/completions", response_model=ChatCompletion, summary="Create a chat completion",
                 responses={**ERROR_RESPONSES, 200: {"content": {"text/event-stream": {}}}},
                 dependencies=[Depends(behind_admission)])
    async def completions(body: body_model, request: Request):  # type: ignore[valid-type]
        req: Any = body
        deadline = parse_deadline(request)
        if req.model != stack.llm.model_name:
            raise APIError(404, f"the model '{req.model[:100]}' does not exist (try '{stack.llm.model_name}')",
                           "model_not_found", "model")
        user = chat_session(request, stack.sessions, require)
        stack.gateway.rate_limit("user:" + user if user else client_key(request))
        max_tokens = req.max_completion_tokens or req.max_tokens or stack.opts.default_max_tokens
        messages: list[Message] = [{"role": m.role, "content": m.text()} for m in req.messages]
        temperature = 1.0 if req.temperature is None else req.temperature

        async def start() -> tuple[Slot, Generation]:
            ticket = await stack.gateway.admit(request.headers.get(CLASS_HEADER), deadline)
            mark_admitted(request, ticket)
            try:
                return ticket, await stack.llm.generate(messages, max_tokens, temperature, deadline if cancel else None)
            except LLMError as e:
                ticket.release()
                raise llm_error(e) from None
            except BaseException:
                ticket.release()
                raise

        head = {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion.chunk",
                "created": int(time.time()), "model": stack.llm.model_name}
        if req.stream:  # a client gone while queued leaves the queue; once streaming, Starlette sees it
            ticket, g = await while_connected(request, start())
            include = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(_stream(g, ticket, head, include), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                                     background=BackgroundTask(stop_stream, g, ticket))
        return await while_connected(request, _complete(start, head))

    return router


async def stop_stream(g: Generation, ticket: Slot) -> None:
    """After a stream, however it ended (also one never started: a client gone before the
    first byte): the sequence stops and the slot is free. Both are no-ops when done already."""
    await g.close()
    ticket.release()


async def _complete(start: Callable[[], Awaitable[tuple[Slot, Generation]]], head: dict[str, Any]) -> JSONResponse:
    """A non-streaming completion: admitted, generated to the end, answered in one body."""
    ticket, g = await start()
    t0 = time.perf_counter()
    try:
        text = "".join([piece async for piece in g]).lstrip()  # type: ignore[attr-defined]
    except LLMError as e:
        raise llm_error(e) from None
    finally:
        await g.close()
        ticket.release()
    llm_ms = (time.perf_counter() - t0) * 1e3  # queueing in the engine + prefill + decode
    return JSONResponse({**head, "object": "chat.completion", "usage": usage_of(g), "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": g.finish_reason,
         "logprobs": None}]}, headers={"Server-Timing": f"llm;dur={llm_ms:.3f}"})

