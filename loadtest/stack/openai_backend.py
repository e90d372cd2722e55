"""`llm.backend: openai`: the same gateway and agent over an external OpenAI-compatible
server (vLLM, SGLang, another surge stack...). Every call streams, so pieces reach the
client as the upstream produces them; usage comes from the upstream when it reports it
(`stream_options.include_usage`), else from counting words."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx

from loadtest.stack.llm import LLMError, Prompt, prompt_text
from loadtest.stack.options import StackOptions
from loadtest.stack.vocab import Vocabulary
from sim.scenario.services import LocalModel, OpenAIBackend


class RemoteGeneration:
    def __init__(self, resp: httpx.Response, prompt_tokens: int) -> None:
        self._resp = resp
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.finish_reason: str | None = None

    async def __aiter__(self) -> AsyncIterator[str]:
        counted = 0
        try:
            async for line in self._resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if usage := chunk.get("usage"):
                    self.prompt_tokens = usage.get("prompt_tokens", self.prompt_tokens)
                    self.completion_tokens = usage.get("completion_tokens", counted)
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
                    if piece:
                        counted += 1
                        self.completion_tokens = max(self.completion_tokens, counted)
                        yield piece
                    self.finish_reason = choice.get("finish_reason") or self.finish_reason
        except (httpx.HTTPError, ValueError) as e:
            raise LLMError("upstream_error") from e
        finally:
            await self._resp.aclose()
        self.finish_reason = self.finish_reason or "stop"

    async def close(self) -> None:
        await self._resp.aclose()


class RemoteLLM:
    """Forwards chat completions to the scenario's `services.llm.backend.base_url`
    (e.g. http://127.0.0.1:8001/v1), asking for its `model`."""

    def __init__(self, backend: OpenAIBackend, opts: StackOptions,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.backend, self.opts = backend, opts
        self.model_name = opts.model_name
        self.vocab = Vocabulary(LocalModel().vocab)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        pass  # the client is made lazily, inside the serving event loop

    def stop(self) -> None:
        self._client = None

    def count(self, messages: Prompt) -> int:
        return self.vocab.count(prompt_text(messages))

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.backend.base_url.rstrip("/"), transport=self._transport,
                headers={"Authorization": f"Bearer {self.opts.upstream_api_key}"},
                timeout=httpx.Timeout(60.0, connect=5.0),
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100))
        return self._client

    async def generate(self, messages: Prompt, max_tokens: int, temperature: float,
                       deadline: float | None) -> RemoteGeneration:
        body: dict[str, object] = {"model": self.backend.model, "max_tokens": max_tokens, "temperature": temperature,
                                   "stream": True, "stream_options": {"include_usage": True}}
        path = "/completions" if isinstance(messages, str) else "/chat/completions"
        body["prompt" if isinstance(messages, str) else "messages"] = messages
        headers = {}
        if deadline is not None:
            headers["X-Request-Timeout"] = f"{max(0.0, deadline - time.monotonic()):.3f}"
        client = self._http()
        try:
            resp = await client.send(client.build_request("POST", path, json=body, headers=headers), stream=True)
        except httpx.HTTPError as e:
            raise LLMError("upstream_error") from e
        if resp.status_code != 200:
            await resp.aclose()
            code = "overloaded" if resp.status_code in (429, 503) else "upstream_error"
            ra = resp.headers.get("Retry-After", "1")
            raise LLMError(code, float(ra) if ra.replace(".", "", 1).isdigit() else 1.0)
        return RemoteGeneration(resp, self.count(messages))
