"""The agent stack as one attempt sees it: auth check, gateway admission, then the command's
stages (LLM calls with growing context, tool calls), and the faults that change it."""

from __future__ import annotations

import simpy

from sim.des.host import HostCpu
from sim.des.llm import DOWN
from sim.des.llm import ERROR as LLM_ERROR
from sim.des.llm import OK as LLM_OK
from sim.des.orders import OrderWork
from sim.des.router import Fleet
from sim.des.services import ERROR, OK, REJECTED, SHED, GatewayService, ToolService, Uniforms
from sim.dists import sampler
from sim.results import Recorder
from sim.rules.calls import client_still_waiting, trace_lengths, ttft_from_attempt, with_image
from sim.rules.faults import combine, session_kept
from sim.rules.orders import OrderState, after_failure
from sim.rules.outcomes import AUTH
from sim.scenario import Fault, Scenario
from sim.streams import Streams


class StackModel:
    """The simulator's model of the agent stack (gateway, auth, tools, LLM fleet) as one attempt sees it."""

    def __init__(self, env: simpy.Environment, sc: Scenario, streams: Streams, rec: Recorder | None = None) -> None:
        self.env, self.scenario, self.streams = env, sc, streams
        sv = sc.services
        self.gateway = GatewayService(env, sv.gateway, streams("service.gateway")) if sv.gateway else None
        self.auth = ToolService(env, "auth", sv.auth, streams("service.auth")) if sv.auth else None
        self.tools = {n: ToolService(env, n, s, streams(f"service.{n}"), streams(f"inventory.{n}"))
                      for n, s in sv.tools.items()}
        self.orders = OrderWork(env, rec, sc.workload.classes, lambda cmd: self.on_payment(cmd))
        hs = sv.host
        self.host = HostCpu(env, hs.cores) if hs is not None else None
        self.request_cpu_s = hs.request_cpu_s if hs else 0.0
        self.llm_call_cpu_s = hs.llm_call_cpu_s if hs else 0.0
        self.tool_call_cpu_s = hs.tool_call_cpu_s if hs else 0.0
        steps_on_host = hs is not None and hs.llm_steps
        self.fleet = Fleet(env, sv.llm, streams("service.llm"), self.host if steps_on_host else None,
                           hs.token_cpu_s if hs else 0.0) if sv.llm else None
        self.auth_epoch = 0
        self._invalidations: list[float] = [0.0]  # fraction of sessions lost at each epoch
        self._u = self.uniforms("stack")
        self._plans = {n: self._plan(n) for n in sc.workload.classes}
        # chat classes' TTFT runs from the attempt's start, as their client times it (`sim.rules.calls`)
        self._ttft_from_attempt = {n: ttft_from_attempt(c) for n, c in sc.workload.classes.items()}
        self._settles = {n: OrderWork.settles(c) for n, c in sc.workload.classes.items()}
        # a class whose attempt is one plain tool call (one tool stage with no order work, no
        # funnel to cut it short, no order to settle): that call is the attempt's work, with no
        # stage walk around it
        self._one_call = {n: (p[0][1], sc.workload.classes[n].priority) for n, p in self._plans.items()
                          if len(p) == 1 and p[0][0] == "tool" and p[0][3] is None
                          and sc.workload.classes[n].funnel is None and not sc.workload.classes[n].places_order}
        self._bare = self.gateway is None and self.auth is None and self.host is None
        self._active: dict[str, list[Fault]] = {}
        self.on_payment = lambda cmd: None  # the client's hook: an attempt's payment stage charged

    def uniforms(self, name: str) -> Uniforms:
        return Uniforms(self.streams(name))

    def _plan(self, cname: str) -> list[tuple]:  # type: ignore[type-arg]
        """Per stage: ('llm', prompt draw, output draw, image draw or None) or ('tool', service,
        result-token draw, the order work or None)."""
        cls = self.scenario.workload.classes[cname]
        plan: list[tuple] = []  # type: ignore[type-arg]
        for i, st in enumerate(cls.stages):
            key = f"class.{cname}.stage{i}"
            if st.llm is not None:
                image = sampler(st.llm.image_tokens, self.streams(key + ".image")) if st.llm.image_tokens else None
                plan.append(("llm", sampler(st.llm.prompt_tokens, self.streams(key + ".prompt")),
                             sampler(st.llm.output_tokens, self.streams(key + ".output")), image))
            else:
                assert st.tool is not None
                plan.append(("tool", self.tools[st.tool.service],
                             sampler(st.tool.result_tokens, self.streams(key + ".result")),
                             self.orders.plan(cls, st.tool.service, i, self.streams, key)))
        return plan

    # -- one attempt ---------------------------------------------------------------------------
    def attempt(self, sess, cmd, client):  # type: ignore[no-untyped-def]
        """The work of one attempt, a generator that returns OK or a failure reason. With no
        auth and no gateway it is the stages themselves (one generator level less per event),
        and for a class of one tool stage that tool's call (tests/sim/test_sim_hot_path.py)."""
        if self._bare:
            now = self.env.now
            tally = client.tallies[cmd.name]
            tally.admitted[client.rec.index(now)] += 1
            deadline = now + (client.spec.timeout_s or float("inf"))
            one = self._one_call.get(cmd.name)
            if one is not None:  # what `_stages` would do for it, one generator level less
                return one[0].call(one[1], deadline)
            return self._stages(cmd, deadline, tally.llm, now)
        return self._attempt(sess, cmd, client)

    def _attempt(self, sess, cmd, client):  # type: ignore[no-untyped-def]
        env = self.env
        t_attempt = env.now
        deadline = env.now + (client.spec.timeout_s or float("inf"))
        if self.host is not None:  # the HTTP request itself, on the shared CPU
            yield self.host.work(self.request_cpu_s)
        if self.auth is not None and not self._session_valid(sess):
            return AUTH
        gw = self.gateway
        if gw is None:
            tally = client.tallies[cmd.name]
            tally.admitted[client.rec.index(env.now)] += 1
            return (yield from self._stages(cmd, deadline, tally.llm, t_attempt))
        if not gw.admit_rate(sess.bucket):
            return REJECTED
        got = yield from gw.enter(cmd.cls.priority, deadline)
        if got != OK:
            return got
        tally = client.tallies[cmd.name]
        tally.admitted[client.rec.index(env.now)] += 1
        try:
            return (yield from self._stages(cmd, deadline, tally.llm, t_attempt))
        finally:
            gw.pool.release()

    def login(self, limit: float, service_s: float | None = None):  # type: ignore[no-untyped-def]
        """One login call (a generator): the HTTP request on the shared CPU, then auth
        (`service_s`: a registration's latency instead of a login's)."""
        if self.host is not None:
            yield self.host.work(self.request_cpu_s)
        assert self.auth is not None
        return (yield from self.auth.call(0, limit, service_s))

    def _session_valid(self, sess) -> bool:  # type: ignore[no-untyped-def]
        if not sess.logged_in:
            return False
        if sess.epoch < self.auth_epoch:
            keep = session_kept(self._invalidations[sess.epoch + 1:])
            sess.epoch = self.auth_epoch
            if self._u() >= keep:
                sess.logged_in = False
                return False
        assert self.auth is not None
        if self.env.now - sess.login_at > self.scenario.services.auth.session_ttl_s:  # type: ignore[union-attr]
            sess.logged_in = False
            return False
        return True

    def _stages(self, cmd, deadline: float, hists, t_attempt: float):  # type: ignore[no-untyped-def]
        """Walk the command's stages. TTFT and TPOT are recorded for every LLM call that produced
        tokens (to the first token from the call's submission, or for a chat class from the
        attempt's start: `sim.rules.calls`; decode time per later token)."""
        env = self.env
        from_attempt = self._ttft_from_attempt[cmd.name]
        context = 0
        carry = cmd.cls.carry_context
        prio = cmd.cls.priority
        first_llm = True
        order = cmd.order
        if order is None and cmd.cls.places_order:
            order = cmd.order = OrderState()
        plan = self._plans[cmd.name]
        # a funnel command the user stopped runs only its first n_stages (sim.funnel.Plan)
        for i, (kind, a, b, c) in enumerate(plan if cmd.n_stages < 0 else plan[:cmd.n_stages]):
            paid = order is not None and order.paid  # what the attempt knows before the stage (`after_failure`)
            if kind == "tool":
                if self.host is not None:
                    yield self.host.work(self.tool_call_cpu_s)
                if c is not None and c[0] == "pay" and cmd.plan is not None and i != cmd.pay_stage:
                    c = None  # the funnel's outcome: this command's payment charges nothing
                got = yield from (a.call(prio, deadline) if c is None else
                                  a.call(prio, deadline, work=self.orders.work(c, a, cmd)))
                if got != OK:
                    return after_failure(got, paid, cmd.cls.stages, i) if paid else got
                if i == cmd.pay_stage and (c is None or c[0] != "pay"):
                    self.on_payment(cmd)  # a funnel's payment tool not named `payment`
                context += int(b())
                continue
            if first_llm and cmd.prompt0 >= 0:  # trace replay gives the first call's lengths
                new, out = trace_lengths(cmd.prompt0, cmd.output0)
            else:
                new, out = max(1, round(a())), max(1, round(b()))
            if c is not None:
                new = with_image(new, c())  # image tokens: prefilled with the prompt
            first_llm = False
            prompt = context + new if carry else new
            t_submit = env.now
            if self.host is not None:  # tokenising and starting the call, outside the batch steps
                yield self.host.work(self.llm_call_cpu_s)
            seq = self.fleet.submit(prompt, out)  # type: ignore[union-attr]
            try:
                got = yield seq.done
            except simpy.Interrupt:
                if seq.replica is not None:
                    seq.replica.cancel(seq)
                raise
            if seq.t_first is not None:
                if not from_attempt:
                    hists[0].record(env.now, seq.t_first - t_submit)
                elif client_still_waiting(seq.t_first - t_attempt, deadline - t_attempt):
                    hists[0].record(env.now, seq.t_first - t_attempt)
                if got == LLM_OK and out > 1:
                    hists[1].record(env.now, (seq.t_done - seq.t_first) / (out - 1))
            if got != LLM_OK:
                got = ERROR if got in (LLM_ERROR, DOWN) else SHED
                return after_failure(got, paid, cmd.cls.stages, i) if paid else got
            context = prompt + out
        if order is not None and self._settles[cmd.name] and cmd.plan is None:
            self.on_payment(cmd)  # no payment stage: the order is paid as the command finishes
        return OK

    # -- faults --------------------------------------------------------------------------------
    def start_fault(self, f: Fault) -> None:
        if f.kind == "session_invalidation":
            self.auth_epoch += 1
            self._invalidations.append(f.magnitude)
            return
        self._active.setdefault(f.target, []).append(f)
        self._apply(f.target)

    def end_fault(self, f: Fault) -> None:
        if f.kind == "session_invalidation":
            return
        self._active[f.target].remove(f)
        self._apply(f.target)

    def _apply(self, target: str) -> None:
        """Every fault in force on a target, combined by the shared rule, sets its state."""
        svc = self.fleet if target == "llm" else self.gateway if target == "gateway" else (
            self.auth if target == "auth" else self.tools[target])
        assert svc is not None
        svc.set_effect(combine(self._active.get(target, [])))


__all__ = ["AUTH", "OK", "REJECTED", "SHED", "StackModel"]
