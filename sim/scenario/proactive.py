"""Proactive tasks: commands the agent starts itself, not a user's session.

- `follow_ups`: after a command of class `after` succeeds, with probability `probability`, the
  agent starts a command of class `start` on the same session `delay_s` later (order tracking,
  a delivery reminder, a "your tickets are ready" message).
- `schedules`: at fixed times (`at_s`, or every `every_s` from `first_at_s`) the agent starts
  about `commands` commands of class `start` (a Poisson count, times the scenario's
  `arrivals.scale`), spread uniformly over `spread_s` seconds (daily reminders; tasks users
  asked for in advance, such as "buy two tickets the moment they go on sale").

Times are in seconds since the run's start. What a consumer does with them is `sim.arrivals`
(`proactive_times`, `FollowUps`), shared by the simulator and the load test.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from sim.dists import Distribution
from sim.scenario.services import Frozen


class FollowUp(Frozen):
    """A command the agent starts after another one succeeded."""

    after: str = Field(description="class whose successful commands trigger the follow-up")
    start: str = Field(description="class of the command the agent starts")
    probability: float = Field(default=1.0, gt=0, le=1, description="chance a success triggers it")
    delay_s: Distribution = Field(description="seconds from the success to the follow-up's start")


class TaskSchedule(Frozen):
    """Commands the agent starts at fixed times."""

    start: str = Field(description="class of the commands started")
    at_s: tuple[float, ...] = Field(default=(), description="firing times, seconds since the run's start")
    every_s: float | None = Field(default=None, gt=0, le=1e8, description="fire every this many seconds")
    first_at_s: float = Field(default=0.0, ge=0, le=1e8, description="the first firing with every_s, seconds since the run's start")
    commands: float = Field(gt=0, le=1e9, description="mean commands per firing (a Poisson count, times "
                                                      "arrivals.scale)")
    spread_s: float = Field(default=0.0, ge=0, le=1e7, description="starts spread uniformly over this many seconds after each firing")

    @model_validator(mode="after")
    def _when(self) -> TaskSchedule:
        if bool(self.at_s) == (self.every_s is not None):
            raise ValueError("give exactly one of 'at_s' or 'every_s'")
        bad = [t for t in self.at_s if not 0 <= t <= 1e8]
        if bad:
            raise ValueError(f"'at_s' times must be in [0, 1e8] seconds (got {bad[0]})")
        return self

    def firings(self, horizon_s: float) -> list[float]:
        """Firing times before `horizon_s`, in order."""
        if self.every_s is None:
            return sorted(t for t in self.at_s if t < horizon_s)
        n = max(0, int((horizon_s - self.first_at_s) / self.every_s - 1e-12) + 1)
        return [t for t in (self.first_at_s + k * self.every_s for k in range(n)) if t < horizon_s]


class Proactive(Frozen):
    """What the agent starts by itself (see the module docstring)."""

    follow_ups: tuple[FollowUp, ...] = Field(default=(), description="commands the agent starts after a success "
                                                                   "(order tracking, reminders)")
    schedules: tuple[TaskSchedule, ...] = Field(default=(), description="commands the agent starts at fixed times "
                                                                   "(standing orders, tasks set up in advance)")

    def classes(self) -> set[str]:
        """Classes a proactive task may start."""
        return {f.start for f in self.follow_ups} | {s.start for s in self.schedules}
