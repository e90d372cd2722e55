"""OpenAI-compatible text completions (`/v1/completions`): a raw prompt, no chat template.

Behind the same gateway as chat (priority from `X-Surge-Class`, the same deadline and session
rules); generation always runs to `max_tokens` (finish_reason "length"). Streams are
`text_completion` chunks whose `choices[].text` carry the tokens.
"""

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, create_model
from starlette.background import BackgroundTask

from loadtest.stack.auth import chat_session
from loadtest.stack.chat import CLASS_HEADER, llm_error, sse, sse_stream, stop_stream, usage_of
from loadtest.stack.disconnect import while_connected
from loadtest.stack.errors import ERROR_RESPONSES, APIError
from loadtest.stack.gateway import Slot, behind_admission, client_key, mark_admitted, parse_deadline
from loadtest.stack.jsontypes import Bool, Float, Int, Text
from loadtest.stack.llm import Generation, LLMError
from loadtest.stack.state import Stack


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: Bool = False


class CompletionRequestBase(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: Text(min_length=1, max_length=200)  # type: ignore[valid-type]
    prompt: Text(min_length=1, max_length=400_000)  # type: ignore[valid-type]
    temperature: Float(ge=0, le=2) | None = None  # type: ignore[valid-type]
    stream: Bool = False
    stream_options: StreamOptions | None = None


def completion_request_model(max_tokens_cap: int) -> type[CompletionRequestBase]:
    limit: Any = (Int(ge=1, le=max_tokens_cap) | None, None)
    return create_model("CompletionRequest", __base__=CompletionRequestBase, max_tokens=limit)  # type: ignore[call-overload]


def _stream(g: Generation, slot: Slot, head: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    def chunk(text: str, finish: str | None) -> bytes:
        return sse({**head, "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]})

    return sse_stream(g, slot, head, include_usage, chunk)


def make_router(stack: Stack) -> APIRouter:
    router = APIRouter(tags=["chat"])
    body_model = completion_request_model(stack.opts.max_tokens_cap)
    cancel = stack.deadlines.servers_cancel()

    @router.post("/v1/completions", summary="Create a text completion",
                 responses={**ERROR_RESPONSES, 200: {"content": {"text/event-stream": {}}}},
                 dependencies=[Depends(behind_admission)])
    async def completions(body: body_model, request: Request):  # type: ignore[valid-type]
        req: Any = body
        deadline = parse_deadline(request)
        if req.model != stack.llm.model_name:
            raise APIError(404, f"the model '{req.model[:100]}' does not exist (try '{stack.llm.model_name}')",
                           "model_not_found", "model")
        user = chat_session(request, stack.sessions, stack.opts.chat_requires_session)
        stack.gateway.rate_limit("user:" + user if user else client_key(request))

        async def start() -> tuple[Slot, Generation]:
            slot = await stack.gateway.admit(request.headers.get(CLASS_HEADER), deadline)
            mark_admitted(request, slot)
            try:
                return slot, await stack.llm.generate(req.prompt, req.max_tokens or stack.opts.default_max_tokens,
                                                      1.0 if req.temperature is None else req.temperature,
                                                      deadline if cancel else None)
            except LLMError as e:
                slot.release()
                raise llm_error(e) from None
            except BaseException:
                slot.release()
                raise

        head = {"id": "cmpl-" + uuid.uuid4().hex[:24], "object": "text_completion", "created": int(time.time()),
                "model": stack.llm.model_name}
        if req.stream:  # as chat: a client gone while queued leaves the queue; streams free their slot
            slot, g = await while_connected(request, start())
            include = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(_stream(g, slot, head, include), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                                     background=BackgroundTask(stop_stream, g, slot))

        async def complete() -> JSONResponse:
            slot, g = await start()
            try:
                text = "".join([piece async for piece in g]).lstrip()  # type: ignore[attr-defined]
            except LLMError as e:
                raise llm_error(e) from None
            finally:
                await g.close()
                slot.release()
            return JSONResponse({**head, "usage": usage_of(g), "choices": [
                {"index": 0, "text": text, "finish_reason": g.finish_reason, "logprobs": None}]})

        return await while_connected(request, complete())

    return router
