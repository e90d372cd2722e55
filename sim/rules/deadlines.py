"""Which servers learn a client's deadline, and what they do with it.

A client's deadline is its attempt's start plus `clients.timeout_s`. Servers learn it when the
scenario says so, and then:

- `clients.cancel_on_timeout`: every server stops the attempt's work at the deadline, wherever
  it is (a queue, a tool call, an LLM sequence): the client told them it stopped waiting;
- `services.gateway.deadline_drop`: the gateway's admission queue drops waiting work whose
  deadline has passed (work already admitted runs to the end);
- `services.auth.deadline_drop`, `services.tools.NAME.deadline_drop`: that service's queue does
  the same (a server-side request timeout).

Without either, servers finish work nobody waits for any more: the sustaining loop of a
retry storm. The load test sends the deadline (`X-Request-Timeout`) exactly when a server acts
on it; the simulator applies the same two rules to its model of the servers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.scenario import Scenario


@dataclass(frozen=True)
class Deadlines:
    """The deadline rules of one scenario."""

    timeout_s: float | None  # the client's per-attempt timeout (None: no deadline)
    cancel_on_timeout: bool  # every server drops the work at the deadline
    gateway_drops_expired: bool  # the gateway's queue drops waiting work past its deadline
    services_drop_expired: frozenset[str] = frozenset()  # auth and tools whose queues do the same

    @classmethod
    def of(cls, sc: Scenario) -> Deadlines:
        gw, sv = sc.services.gateway, sc.services
        pools = ({"auth": sv.auth} if sv.auth else {}) | dict(sv.tools)
        return cls(sc.clients.timeout_s, sc.clients.cancel_on_timeout, bool(gw and gw.deadline_drop),
                   frozenset(n for n, s in pools.items() if s.deadline_drop))

    @property
    def sent(self) -> bool:
        """Whether the client tells servers its deadline (some server acts on it)."""
        return self.timeout_s is not None and (self.cancel_on_timeout or self.gateway_drops_expired
                                               or bool(self.services_drop_expired))

    def service_drops(self, name: str) -> bool:
        """Whether service `name`'s queue drops expired waiters (its own rule, or cancellation)."""
        return self.sent and (name in self.services_drop_expired or self.cancel_on_timeout)

    def gateway_drops(self) -> bool:
        """Whether the gateway's queue drops expired waiters."""
        return self.sent and (self.gateway_drops_expired or self.cancel_on_timeout)

    def servers_cancel(self) -> bool:
        """Whether tools, auth and the LLM stop work at the deadline."""
        return self.sent and self.cancel_on_timeout
