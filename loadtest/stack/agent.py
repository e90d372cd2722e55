"""The agent: "help me buy a milk tea" -> LLM plan -> catalog -> order -> payment -> answer.

Stages come from the config: the command's class (body field `class`, one of the scenario's
order-placing classes) or, when it names none, the most likely one. Each LLM stage's prompt and
output sizes are drawn from its distributions, and the prompt carries the context so far, so
later calls cost more tokens. Every LLM call is timed as the simulator times it: TTFT from
submission to the first token, TPOT = (last token - first token) / (output tokens - 1). The order itself follows `OrderStore`'s exactly-once rules:
- the same `Idempotency-Key` (per user) always means the same order;
- a retry of a completed command replays the stored answer (header `Idempotent-Replayed`);
- a retry while the first attempt is still running gets 409 + Retry-After (no waiting:
  it would hold a connection and a gateway slot for nothing);
- a retry after a failed attempt resumes the same order where it stopped;
- once paid, the command succeeds even if the final LLM call fails (money moved: the
  user must be told), with a plain answer instead of a generated one.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from loadtest.stack.chat import llm_error
from loadtest.stack.config import LLMStage, StackConfig, ToolStage
from loadtest.stack.errors import APIError, retry_after
from loadtest.stack.gateway import Ticket
from loadtest.stack.llm import LLMError, Message
from loadtest.stack.services import ServiceError
from loadtest.stack.state import Stack
from loadtest.stack.vocab import Vocabulary

MENU = (  # sku, name, price (cents)
    ("tea-milk", "classic milk tea", 1500), ("tea-boba", "brown sugar boba milk tea", 1800),
    ("tea-jasmine", "jasmine green tea", 1200), ("tea-matcha", "matcha latte", 2000),
    ("tea-mango", "mango fruit tea", 1600), ("coffee-latte", "iced latte", 1700),
)
REQUIRED_TOOLS = ("catalog", "order", "payment")
_SYSTEM = "you are a shopping agent . plan the order , pick an item , place it , pay , confirm ."


def normalise_stages(stages: tuple[LLMStage | ToolStage, ...]) -> tuple[LLMStage | ToolStage, ...]:
    """The configured stages, plus any of catalog/order/payment they lack, in that order,
    before the final LLM stage: an agent command always places and pays its order."""
    named = {s.tool for s in stages if isinstance(s, ToolStage)}
    missing = [ToolStage(t) for t in REQUIRED_TOOLS if t not in named]
    if not missing:
        return stages
    last_llm = max((i for i, s in enumerate(stages) if isinstance(s, LLMStage)), default=len(stages))
    return (*stages[:last_llm], *missing, *stages[last_llm:])


def pick_item(command: str) -> tuple[str, str, int]:
    """The menu item a command asks for (first whose words all appear), else the first."""
    words = set(command.lower().replace(",", " ").split())
    for sku, name, price in MENU:
        if set(name.split()) - {"classic", "iced"} <= words:
            return sku, name, price
    return MENU[0]


def request_hash(command: str, klass: str | None = None) -> str:
    text = command if klass is None else f"{klass}\n{command}"
    return hashlib.sha256(text.encode()).hexdigest()


def order_view(row: dict[str, Any]) -> dict[str, Any]:
    """The public shape of an order row."""
    return {k: row.get(k) for k in ("id", "status", "sku", "item", "price_cents", "payment_id", "created_at",
                                    "updated_at")} | {"idempotency_key": row.get("idempotency_key"),
                                                      "attempts": row.get("attempts")}


@dataclass
class Started:
    """A claimed command: its order row and gateway slot, or the stored body of a replay."""

    row: dict[str, Any]
    ticket: Ticket | None
    replay: dict[str, Any] | None
    stages: tuple[LLMStage | ToolStage, ...] = ()


class Agent:
    """Runs agent commands for one stack; `progress(stage, llm_call=None)` hooks stream SSE
    events (at the start of each stage, and at the end of each LLM call with its timing)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.cfg: StackConfig = stack.cfg
        self.stages = normalise_stages(self.cfg.agent_stages)
        self.classes = {n: normalise_stages(s) for n, s in self.cfg.agent_classes.items()}
        self.vocab = Vocabulary(self.cfg.model.vocab)

    def stages_of(self, klass: str | None) -> tuple[LLMStage | ToolStage, ...]:
        """The stages a command of `klass` runs (None: the default class); 400 for a name the
        stack does not know."""
        if klass is None:
            return self.stages
        if klass not in self.classes:
            known = ", ".join(sorted(self.classes)) or "none: this stack was configured without a scenario"
            raise APIError(400, f"unknown command class '{klass[:64]}' (known: {known})", "unknown_class", "class")
        return self.classes[klass]

    async def start(self, user: str, key: str, command: str, deadline: float | None,
                    klass: str | None = None) -> Started:
        """Claim the order for (user, key) and a gateway slot. Raises `APIError` for an unknown
        class (400), a key reused with another command (422), a key in use (409) or overload
        (503/504)."""
        st = self.stack
        stages = self.stages_of(klass)
        kind, row = await st.store.claim(user, key, request_hash(command, klass), self.cfg.order_lease_s)
        if kind == "mismatch":
            raise APIError(422, "this Idempotency-Key was used with a different command", "idempotency_key_reused",
                           "Idempotency-Key")
        if kind == "replay":
            st.metrics.orders.inc(("replayed",))
            return Started(row, None, {"order": order_view(row), "answer": row["answer"], "usage": None})
        if kind == "in_progress":
            st.metrics.orders.inc(("conflict",))
            raise retry_after(409, "a command with this Idempotency-Key is still in progress", "idempotency_key_in_use", 1)
        try:
            ticket = await st.gateway.admit(klass if klass in self.cfg.gateway.priority else "agent", deadline)
        except BaseException as e:
            await self._release(row["id"], getattr(e, "code", None) or "cancelled")
            raise
        return Started(row, ticket, None, stages)

    async def finish(self, started: Started, command: str, deadline: float | None, progress: Any = None) -> dict[str, Any]:
        """Run the stages of a started command; the response body. Raises `APIError`."""
        try:
            return await self._stages(started.row, started.stages or self.stages, command, deadline, progress)
        finally:
            if started.ticket:
                started.ticket.release()

    async def _stages(self, row: dict[str, Any], stages: tuple[LLMStage | ToolStage, ...], command: str,
                      deadline: float | None, progress: Any) -> dict[str, Any]:
        oid, st = row["id"], self.stack
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        t_start, llm_s = time.perf_counter(), [0.0]
        calls: list[dict[str, Any]] = []
        answer, context = "", [command]
        try:
            for i, stage in enumerate(stages):
                if progress:
                    await progress(stage.tool if isinstance(stage, ToolStage) else f"llm_{i}")
                if isinstance(stage, ToolStage):
                    row = await self._tool(stage.tool, row, command, deadline)
                    context.append(f"{stage.tool} ok {row.get('item') or ''}")
                    if stage.result_tokens is not None:
                        n = int(round(stage.result_tokens.sample(st.rng_agent)))
                        context.append(self.vocab.filler(n, offset=i))
                else:
                    t, call = time.perf_counter(), LLMCall(t_start)
                    try:
                        answer = await self._llm(stage, context, usage, deadline, call)
                    finally:
                        llm_s[0] += time.perf_counter() - t
                        if call.t_first is not None:  # a call that produced tokens is timed, as in the simulator
                            calls.append(call.view())
                            if progress:
                                await progress(f"llm_{i}", calls[-1])
                    context.append(answer)
        except (ServiceError, LLMError, APIError) as e:
            if row["status"] != "paid":
                await self._release(oid, getattr(e, "code", "error"))
                st.metrics.orders.inc(("failed",))
                raise _as_api_error(e) from None
            answer = f"your {row['item']} is ordered and paid ."  # paid: tell the user, whatever failed
        except BaseException:
            await self._release(oid, "cancelled")
            raise
        final = await st.store.complete(oid, answer.strip())
        st.metrics.orders.inc(("completed",))
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        timing = {"llm_s": llm_s[0], "total_s": time.perf_counter() - t_start, "llm_calls": calls}
        return {"order": order_view(final), "answer": final["answer"], "usage": usage, "timing": timing}

    async def _release(self, oid: str, code: str) -> None:
        # Shielded: a cancelled request must still give its lease back, or retries get 409s.
        await asyncio.shield(self.stack.store.release(oid, code))

    async def _tool(self, name: str, row: dict[str, Any], command: str, deadline: float | None) -> dict[str, Any]:
        st, oid = self.stack, row["id"]
        svc = st.tools.get(name)
        if name == "catalog":
            if row.get("sku"):
                return row  # resumed: the item was chosen before
            sku, item, price = pick_item(command)
            item_row = await svc.call(_value((sku, item, price)), deadline) if svc else (sku, item, price)
            return {**row, "sku": item_row[0], "item": item_row[1], "price_cents": item_row[2]}
        if name == "order":
            if row["status"] in ("placed", "paid"):
                return row
            work = lambda: st.store.place(oid, row["sku"], row["item"], row["price_cents"])  # noqa: E731
            await (svc.call(work, deadline) if svc else work())
            return {**row, "status": "placed"}
        if name == "payment":
            if row["status"] == "paid":
                return row
            work = lambda: st.store.pay(oid)  # noqa: E731
            pid = await (svc.call(work, deadline) if svc else work())
            return {**row, "status": "paid", "payment_id": pid}
        if svc:
            await svc.call(_value(None), deadline)
        return row

    async def _llm(self, stage: LLMStage, context: list[str], usage: dict[str, int], deadline: float | None,
                   call: LLMCall) -> str:
        rng = self.stack.rng_agent
        new_tokens = max(1, int(round(stage.prompt_tokens.sample(rng))))
        max_tokens = max(1, min(self.cfg.max_tokens_cap, int(round(stage.output_tokens.sample(rng)))))
        context.append(self.vocab.filler(new_tokens, offset=len(context)))
        budget = self.cfg.model.max_context - max_tokens - 16  # headroom for role labels
        messages = self._messages(context)
        while len(context) > 1 and self.stack.llm.count(messages) > budget:
            context.pop(1)  # forget the oldest context, keep the command itself
            messages = self._messages(context)
        if self.stack.llm.count(messages) > budget:
            messages[-1]["content"] = " ".join(messages[-1]["content"].split()[: max(1, budget // 2)])
        call.t_submit = time.perf_counter()
        g = await self.stack.llm.generate(messages, max_tokens, 1.0, deadline)
        pieces = []
        try:
            async for p in g:
                call.token()
                pieces.append(p)
        finally:
            call.prompt_tokens, call.output_tokens = g.prompt_tokens, g.completion_tokens
        call.ok = True
        usage["prompt_tokens"] += g.prompt_tokens
        usage["completion_tokens"] += g.completion_tokens
        return "".join(pieces)

    @staticmethod
    def _messages(context: list[str]) -> list[Message]:
        return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": " ".join(context)}]


class LLMCall:
    """The timing of one LLM call of a command (perf_counter seconds)."""

    def __init__(self, t_start: float) -> None:
        self.t_start = self.t_submit = t_start  # the attempt's start; the call's submission
        self.t_first: float | None = None
        self.t_last = 0.0
        self.prompt_tokens = self.output_tokens = 0
        self.ok = False

    def token(self) -> None:
        self.t_last = time.perf_counter()
        if self.t_first is None:
            self.t_first = self.t_last

    def view(self) -> dict[str, Any]:
        """`ttft_s` (submission to first token), `tpot_s` (null unless the call finished with 2+
        tokens), tokens, and `end_s` (seconds from the attempt's start to the last token)."""
        assert self.t_first is not None
        n = self.output_tokens
        tpot = (self.t_last - self.t_first) / (n - 1) if self.ok and n > 1 else None
        return {"ttft_s": self.t_first - self.t_submit, "tpot_s": tpot, "prompt_tokens": self.prompt_tokens,
                "output_tokens": n, "end_s": self.t_last - self.t_start}


def _value(v: Any) -> Any:
    async def work() -> Any:
        return v
    return work


def _as_api_error(e: Exception) -> APIError:
    if isinstance(e, APIError):
        return e
    if isinstance(e, LLMError):
        return llm_error(e)
    assert isinstance(e, ServiceError)
    if e.code == "timeout":
        return APIError(504, f"the {e.service} service did not answer in time", f"{e.service}_timeout")
    return retry_after(503, f"the {e.service} service is unavailable ({e.code.replace('_', ' ')})",
                       f"{e.service}_{e.code}", e.retry_after_s)
