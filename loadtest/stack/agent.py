"""The agent: a command of one of the scenario's classes runs that class's stages, in order,
exactly as the simulator runs them (`workload.classes.NAME.stages`).

- An LLM stage's prompt is the command's context so far plus `prompt_tokens` new tokens when
  the class carries context (else just the new tokens); it generates `output_tokens` tokens;
  then the context is prompt + output, as in the simulator. Prompts are real text of exactly
  that many tokens (the earlier prompts and answers, then new words).
- A tool stage calls that service (latency, errors, its queue and breaker); its
  `result_tokens` join the context. For an order-placing class the tools named `catalog`,
  `order` and `payment` do the real work in SQLite: pick the item, place the order, pay.
- Every LLM call is timed as the simulator times it: TTFT from submission to the first token,
  TPOT = (last token - first token) / (output tokens - 1).

A command's priority at the gateway is its class's. Orders follow `OrderStore`'s exactly-once
rules:
- the same `Idempotency-Key` (per user) always means the same order;
- a retry of a completed command replays the stored answer (header `Idempotent-Replayed`);
- a retry while an earlier attempt still runs is a new attempt, as in the simulator (it costs
  capacity: the earlier one is work nobody waits for); both work on the one order, which is
  placed once and paid once, and the first to finish stores the answer;
- a retry after a failed attempt resumes the same order where it stopped;
- once paid, the command succeeds even if a later stage fails (the customer paid: the order
  stands), with a plain answer instead of a generated one, unless an inventory stage is still to
  come (`sim.rules.orders.after_failure`, the simulator's rule: the stock is not sold until it is
  confirmed);
- a hold or confirm on an inventory service (`orderwork.py`, `inventory.py`) answers 409 when it
  cannot be done: `inventory_conflict` or `hold_expired` (retryable), `sold_out` (final; a paid
  order is refunded).

A command of a class with a funnel may say its `outcome` (`sim.funnel`: the client drew it from
its user's state and draws): it then runs that outcome's stages only (`Funnel.stages_for`, the
simulator's rule). Out of stock, the order tool places nothing; declined, the payment tool
charges nothing; either way, and when the user stopped before the order, the command succeeds
with its order row ended unpaid under that outcome (`OrderStore.complete`), and the answer says
the outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from loadtest.stack.chat import llm_error
from loadtest.stack.errors import APIError, retry_after
from loadtest.stack.gateway import Slot
from loadtest.stack.llm import LLMError, Message
from loadtest.stack.orderwork import InventoryError, Ledger, OrderTools, with_item
from loadtest.stack.services import ServiceError
from loadtest.stack.state import Stack
from loadtest.stack.vocab import Vocabulary
from sim.funnel import NOT_ORDERED, ORDERED, OUT_OF_STOCK, PAYMENT_ERROR, Funnel
from sim.rules.calls import trace_lengths
from sim.rules.orders import after_failure
from sim.rules.outcomes import OK
from sim.scenario import CommandClass, Stage

PROMPT_OVERHEAD_TOKENS = 3  # BOS, "user", ":" around the one user message


def request_hash(command: str, klass: str | None = None, outcome: str | None = None) -> str:
    text = command if klass is None else f"{klass}\n{command}"
    if outcome is not None:  # another outcome under the same key is another command
        text += f"\n{outcome}"
    return hashlib.sha256(text.encode()).hexdigest()


def outcome_of(row: dict[str, Any]) -> str | None:
    """The funnel outcome an order row ended with: ordered (paid), a NOT_ORDERED outcome, or None
    while it runs (or refunded)."""
    status = row.get("status")
    if status in ("paid", "completed"):
        return ORDERED
    return str(status) if status in NOT_ORDERED else None


def order_view(row: dict[str, Any]) -> dict[str, Any]:
    """The public shape of an order row."""
    return {k: row.get(k) for k in ("id", "status", "sku", "item", "price_cents", "payment_id", "created_at",
                                    "updated_at")} | {"idempotency_key": row.get("idempotency_key"),
                                                      "attempts": row.get("attempts"),
                                                      "wrong_item": bool(row.get("wrong_item"))}


def default_class(classes: dict[str, CommandClass]) -> str:
    """The class a command naming none runs: the most likely order-placing class, else the most
    likely class with a tool stage, else the most likely class."""
    def rank(item: tuple[str, CommandClass]) -> tuple[bool, bool, float]:
        c = item[1]
        return c.places_order, any(st.tool is not None for st in c.stages), c.probability
    return max(classes.items(), key=rank)[0]


@dataclass
class Started:
    """A claimed command: its class, its order row (order-placing classes), its gateway slot,
    or the stored body of a replay."""

    klass: str
    row: dict[str, Any] | None
    ticket: Slot | None
    replay: dict[str, Any] | None = None
    outcome: str | None = None  # the funnel outcome the client asked for (None: every stage, as ordered)
    first_call: tuple[int, int] | None = None  # a trace row's (new prompt tokens, output tokens) for the first LLM call


@dataclass
class Context:
    """The command's context so far: its text and its size in tokens (the simulator's count)."""

    text: str = ""
    tokens: int = 0
    pieces: list[str] = field(default_factory=list)


class Agent:
    """Runs agent commands for one stack; `progress(stage, llm_call=None)` hooks stream SSE
    events (at the start of each stage, and at the end of each LLM call with its timing)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.classes = dict(stack.scenario.workload.classes)
        self.default = default_class(self.classes)
        self.vocab: Vocabulary = stack.llm.vocab
        self._cancel = stack.deadlines.servers_cancel()
        self.tools = OrderTools(stack)
        self.funnel = Funnel(stack.scenario.workload)

    def class_of(self, klass: str | None) -> str:
        """The class a command runs (None: the default); 400 for a name the scenario lacks."""
        if klass is None:
            return self.default
        if klass not in self.classes:
            raise APIError(400, f"unknown command class '{klass[:64]}' (known: {', '.join(sorted(self.classes))})",
                           "unknown_class", "class")
        return klass

    async def start(self, user: str, key: str, command: str, deadline: float | None,
                    klass: str | None = None, outcome: str | None = None,
                    first_call: tuple[int, int] | None = None) -> Started:
        """Claim the order (order-placing classes) and a gateway slot. Raises `APIError` for an
        unknown class or an outcome for a class without a funnel (400), a key reused with another
        command (422) or overload (503/504)."""
        st = self.stack
        name = self.class_of(klass)
        if outcome is not None and not self.funnel.has_funnel(name):
            raise APIError(400, f"'outcome': class '{name}' has no funnel (workload.classes.{name}.funnel); "
                           f"got {outcome!r}", "outcome_without_funnel", "outcome")
        row = None
        if self.classes[name].places_order:
            kind, row = await st.store.claim(user, key, request_hash(command, klass, outcome), st.opts.order_lease_s)
            if kind == "mismatch":
                raise APIError(422, "this Idempotency-Key was used with a different command",
                               "idempotency_key_reused", "Idempotency-Key")
            if kind == "replay":
                st.metrics.orders.inc(("replayed",))
                return Started(name, row, None, {"order": order_view(row), "answer": row["answer"], "usage": None,
                                                 "outcome": outcome_of(row)}, outcome)
            if kind == "refunded":  # it could not be fulfilled after payment: the answer stays sold out
                err = InventoryError("order", "sold_out")
                err.extra = {"order": order_view(row)}
                raise err
            if kind == "concurrent":
                st.metrics.orders.inc(("concurrent",))
        try:
            ticket = await st.gateway.admit(name, deadline)
        except BaseException as e:
            if row is not None:
                await self._release(row["id"], getattr(e, "code", None) or "cancelled")
            raise
        return Started(name, row, ticket, None, outcome, first_call)

    async def finish(self, started: Started, command: str, deadline: float | None, progress: Any = None) -> dict[str, Any]:
        """Run the stages of a started command; the response body. Raises `APIError`."""
        try:
            return await self._stages(started, command, deadline, progress)  # each service applies its rule
        finally:
            if started.ticket:
                started.ticket.release()

    async def _stages(self, started: Started, command: str, deadline: float | None, progress: Any) -> dict[str, Any]:
        st, cls = self.stack, self.classes[started.klass]
        row = started.row
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        t_start, llm_s = time.perf_counter(), [0.0]
        calls: list[dict[str, Any]] = []
        answer, ctx, ledger = "", Context(), Ledger()
        stages, fails_at = self._funnel_stages(started)
        lengths = started.first_call  # the first LLM call's, then drawn (`sim.rules.calls.trace_lengths`)
        ordered = started.outcome in (None, ORDERED)
        i = 0
        try:
            for i, stage in enumerate(stages):
                if progress:
                    await progress(stage.tool.service if stage.tool else f"llm_{i}")
                if stage.tool is not None:
                    if i == fails_at:  # the funnel's outcome: no stock, or declined: the call, no work done
                        await self.tools.run(stage, i, None, command, deadline, ledger)
                    else:
                        row = await self.tools.run(stage, i, row, command, deadline, ledger)
                    self._grow(ctx, stage, i)
                    continue
                t, call = time.perf_counter(), LLMCall(t_start)
                try:
                    answer = await self._llm(stage, cls.carry_context, ctx, usage, deadline, call, lengths)
                    lengths = None
                finally:
                    llm_s[0] += time.perf_counter() - t
                    if call.t_first is not None:  # a call that produced tokens is timed, as in the simulator
                        calls.append(call.view())
                        if progress:
                            await progress(f"llm_{i}", calls[-1])
            if row is not None and ordered and row["status"] not in ("paid", "completed"):
                # no payment stage: placed and paid at the end (no service time: the scenario models none)
                row = await self.tools.pay(with_item(row, command), None, ledger, via_service=False)
        except (ServiceError, LLMError, APIError) as e:
            # paid before the failing stage (this attempt's row, as the last stage that answered left it)
            paid = row is not None and row["status"] in ("paid", "completed")
            if after_failure(getattr(e, "code", "error"), paid, cls.stages, i) != OK:
                if row is not None:
                    await self._release(row["id"], getattr(e, "code", "error"))
                    st.metrics.orders.inc(("failed",))
                raise await self._attempt_error(e, row, ledger) from None
            answer = f"your {row['item']} is ordered and paid ."  # type: ignore[index]  # paid: tell the user
        except BaseException:
            if row is not None:
                await self._release(row["id"], "cancelled")
            raise
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        timing = {"llm_s": llm_s[0], "total_s": time.perf_counter() - t_start, "llm_calls": calls}
        if row is None:
            return {"order": None, "answer": answer.strip(), "usage": usage, "timing": timing, "ledger": None,
                    "outcome": None}
        ended = "completed" if ordered else str(started.outcome)
        final = await st.store.complete(row["id"], answer.strip(), ended)
        st.metrics.orders.inc((ended,))
        return {"order": order_view(final), "answer": final["answer"], "usage": usage, "timing": timing,
                "ledger": ledger.view(), "outcome": outcome_of(final)}

    def _funnel_stages(self, started: Started) -> tuple[list[Stage], int]:
        """The stages a command runs and the index of the one that fails by the funnel's outcome
        (-1: none): every stage without an outcome, else the outcome's (`Funnel.stages_for`)."""
        stages = list(self.classes[started.klass].stages)
        if started.outcome is None:
            return stages, -1
        n, _ = self.funnel.stages_for(started.klass, started.outcome)
        return stages[:n], n - 1 if started.outcome in (OUT_OF_STOCK, PAYMENT_ERROR) else -1

    async def _attempt_error(self, e: Exception, row: dict[str, Any] | None, ledger: Ledger) -> APIError:
        """The attempt's error, carrying (for a stream's error event) the order as it now is and
        what the attempt did to the money."""
        err = _as_api_error(e)
        if row is not None:
            fresh = await self.stack.store.get(row["id"])
            err.extra = {"order": order_view(fresh or row), "ledger": ledger.view()}
        return err

    def _grow(self, ctx: Context, stage: Stage, i: int) -> None:
        """A tool's result joins the context (its `result_tokens`, drawn)."""
        assert stage.tool is not None
        if stage.tool.result_tokens is not None:
            n = int(stage.tool.result_tokens.sample(self.stack.rng_agent))
            if n > 0:
                ctx.pieces.append(self.vocab.filler(n, offset=i))
                ctx.tokens += n

    async def _release(self, oid: str, code: str) -> None:
        # Shielded: a cancelled request must still end its attempt on the order.
        await asyncio.shield(self.stack.store.release(oid, code))

    async def _llm(self, stage: Stage, carry: bool, ctx: Context, usage: dict[str, int], deadline: float | None,
                   call: LLMCall, lengths: tuple[int, int] | None = None) -> str:
        assert stage.llm is not None
        rng, llm = self.stack.rng_agent, self.stack.llm
        row = trace_lengths(*lengths) if lengths is not None else None  # a trace row's, as the simulator's
        # a client's lengths are clipped to the model's context (`_fit` shortens the prompt to leave room for
        # the output); a trace scenario's fit it, so nothing is clipped there
        ctx_limit = getattr(llm, "max_context", 1 << 30)
        if row:
            row = min(row[0], ctx_limit), min(row[1], max(1, ctx_limit - PROMPT_OVERHEAD_TOKENS - 1))
        new = row[0] if row else max(1, round(stage.llm.prompt_tokens.sample(rng)))
        if stage.llm.image_tokens is not None:  # the images' tokens, prefilled with the text (words stand in)
            new += max(0, round(stage.llm.image_tokens.sample(rng)))
        out = max(1, min(self.stack.opts.max_tokens_cap, row[1] if row else round(stage.llm.output_tokens.sample(rng))))
        prompt = ctx.tokens + new if carry else new
        pieces = [*ctx.pieces, self.vocab.filler(new, offset=ctx.tokens)] if carry else [self.vocab.filler(new)]
        text = self._fit(" ".join(pieces), prompt, out)
        messages: list[Message] = [{"role": "user", "content": text}]
        call.t_submit = time.perf_counter()
        g = await llm.generate(messages, out, 1.0, deadline if self._cancel else None)
        answer: list[str] = []
        try:
            async for p in g:
                call.token()
                answer.append(p)
        finally:
            call.prompt_tokens, call.output_tokens = g.prompt_tokens, g.completion_tokens
        call.ok = True
        usage["prompt_tokens"] += g.prompt_tokens
        usage["completion_tokens"] += g.completion_tokens
        reply = "".join(answer)
        ctx.pieces, ctx.tokens = [text, reply.strip()], prompt + out  # the simulator's context: prompt + output
        return reply

    def _fit(self, text: str, prompt_tokens: int, out: int) -> str:
        """The prompt text: `prompt_tokens` in all with the message overhead; when it would not
        fit the local model's context with `out` tokens to generate, its oldest part goes (the
        one place the stack cannot follow the simulator: a real context window)."""
        want = max(1, prompt_tokens - PROMPT_OVERHEAD_TOKENS)
        limit = getattr(self.stack.llm, "max_context", 1 << 30) - out - PROMPT_OVERHEAD_TOKENS
        words = text.split()
        want = max(1, min(want, limit))
        if len(words) > want:
            words = words[len(words) - want:]
        elif len(words) < want:
            words += self.vocab.filler(want - len(words), offset=len(words)).split()
        return " ".join(words)


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
