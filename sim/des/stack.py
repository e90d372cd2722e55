"""The agent stack as one attempt sees it: auth check, gateway admission, then the command's
stages (LLM calls with growing context, tool calls), and the faults that change it."""

from __future__ import annotations

import simpy

from sim.des.llm import DOWN
from sim.des.llm import ERROR as LLM_ERROR
from sim.des.llm import OK as LLM_OK
from sim.des.orders import OrderWork
from sim.des.router import Fleet
from sim.des.services import ERROR, OK, REJECTED, SHED, GatewayService, ToolService, Uniforms
from sim.dists import sampler
from sim.results import Recorder
from sim.rules.faults import combine, session_kept
from sim.rules.orders import OrderState
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
        self.fleet = Fleet(env, sv.llm, streams("service.llm")) if sv.llm else None
        self.auth_epoch = 0
        self._invalidations: list[float] = [0.0]  # fraction of sessions lost at each epoch
        self._u = self.uniforms("stack")
        self._plans = {n: self._plan(n) for n in sc.workload.classes}
        self._settles = {n: OrderWork.settles(c) for n, c in sc.workload.classes.items()}
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
        auth and no gateway it is the stages themselves (one generator level less per event)."""
        if self.gateway is None and self.auth is None:
            env = self.env
            client._s["admitted"][cmd.name][client.rec.index(env.now)] += 1
            return self._stages(cmd, env.now + (client.spec.timeout_s or float("inf")), client.llm_hists[cmd.name])
        return self._attempt(sess, cmd, client)

    def _attempt(self, sess, cmd, client):  # type: ignore[no-untyped-def]
        env = self.env
        deadline = env.now + (client.spec.timeout_s or float("inf"))
        if self.auth is not None and not self._session_valid(sess):
            return AUTH
        gw = self.gateway
        if gw is None:
            client._s["admitted"][cmd.name][client.rec.index(env.now)] += 1
            return (yield from self._stages(cmd, deadline, client.llm_hists[cmd.name]))
        if not gw.admit_rate(sess.bucket):
            return REJECTED
        got = yield from gw.enter(cmd.cls.priority, deadline)
        if got != OK:
            return got
        client._s["admitted"][cmd.name][client.rec.index(env.now)] += 1
        try:
            return (yield from self._stages(cmd, deadline, client.llm_hists[cmd.name]))
        finally:
            gw.pool.release()

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

    def _stages(self, cmd, deadline: float, hists):  # type: ignore[no-untyped-def]
        """Walk the command's stages. TTFT and TPOT are serving metrics: recorded for every LLM
        call that produced tokens (submit to first token; decode time per later token)."""
        env = self.env
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
            if kind == "tool":
                if c is not None and c[0] == "pay" and cmd.plan is not None and i != cmd.pay_stage:
                    c = None  # the funnel's outcome: this command's payment charges nothing
                got = yield from (a.call(prio, deadline) if c is None else
                                  a.call(prio, deadline, work=self.orders.work(c, a, cmd)))
                if got != OK:
                    return got
                if i == cmd.pay_stage and (c is None or c[0] != "pay"):
                    self.on_payment(cmd)  # a funnel's payment tool not named `payment`
                context += int(b())
                continue
            if first_llm and cmd.prompt0 >= 0:  # trace replay gives the first call's lengths
                new, out = cmd.prompt0, max(1, cmd.output0)
            else:
                new, out = max(1, round(a())), max(1, round(b()))
            if c is not None:
                new += max(0, round(c()))  # image tokens: prefilled with the prompt
            first_llm = False
            prompt = context + new if carry else new
            t_submit = env.now
            seq = self.fleet.submit(prompt, out)  # type: ignore[union-attr]
            try:
                got = yield seq.done
            except simpy.Interrupt:
                if seq.replica is not None:
                    seq.replica.cancel(seq)
                raise
            if seq.t_first is not None:
                hists[0].record(env.now, seq.t_first - t_submit)
                if got == LLM_OK and out > 1:
                    hists[1].record(env.now, (seq.t_done - seq.t_first) / (out - 1))
            if got != LLM_OK:
                return ERROR if got in (LLM_ERROR, DOWN) else SHED
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
