"""The campaign launch as a mechanism, and the funnel from "help me buy" to an order.

`population.launch` replaces a list of daily active users (`population.campaign`) with the
people behind it: users who had the app before the launch, new users who hear of the campaign
from outside the app (news, the App Store chart, social media) and download it, friends they
invite, and free-order cards that joining and inviting earn and ordering spends. Daily active
users, the day's shape and the days after the launch follow from these; nothing in here is a
curve of demand. All user counts are full-scale (the whole app); `population.scale` cuts the cell.

`workload.classes.NAME.funnel` makes an order-placing command end without an order when the
user changes their mind, has no card left, finds the item out of stock or the payment fails.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from sim.dists import Distribution, Exponential
from sim.scenario.services import Frozen


class Broadcast(Frozen):
    """New users reached from outside the app. Each person of the pool is unaware, then aware,
    then joins (downloads, registers, first session): aware at launch with probability
    `aware_at_launch`, else becoming aware at `reach_per_day`; once aware, joining at
    `join_per_hour`. Both rates are per unit of phone activity (`Launch.activity`, mean 1), so
    nobody hears or downloads while asleep."""

    pool_users: float = Field(gt=0, le=1e10, description="people outside the app the campaign's publicity can bring "
                              "in (full scale)")
    aware_at_launch: float = Field(ge=0, le=1, description="fraction of the pool that knows of the campaign when it "
                                   "opens (it was announced beforehand)")
    reach_per_day: float = Field(ge=0, le=1e3, description="rate at which the rest hear of it, per day of mean phone "
                                 "activity (1/day)")
    join_per_hour: float = Field(gt=0, le=1e3, description="rate at which someone aware downloads and opens the app, "
                                 "per hour of mean phone activity (1/h)")


class Invitations(Frozen):
    """Friends a user brings in: when a user first logs in after the launch, the number of friends
    who will accept their invitation is Poisson with a mean drawn from `accepted_per_user` for that
    user (a negative binomial when that is a gamma: a few users invite many). Each friend opens
    the app `delay_s` of phone-activity time later (seconds at mean activity) and gets cards of
    their own; the inviter earns `Cards.per_invitation` when the friend has registered."""

    accepted_per_user: Distribution = Field(description="mean number of friends who accept a user's invitation "
                                            "(drawn once per user)")
    delay_s: Distribution = Field(description="from the inviter's first login to the friend's first session, in "
                                  "seconds of mean phone activity")


class Cards(Frozen):
    """Free-order cards: a per-user resource that joining and inviting earn and ordering spends."""

    on_join: int = Field(default=1, ge=0, le=1000, description="cards at a user's first login after the launch")
    per_invitation: int = Field(default=1, ge=0, le=1000, description="cards for each invited friend who registers")
    max_per_user: int = Field(default=21, ge=0, le=10_000, description="at most this many cards earned per user")


class Registration(Frozen):
    """A new user's first session registers an account at auth (`services.auth.register_latency`).
    A failed registration is tried again `retry_after_s` later, up to `max_tries` sessions; then
    the user is lost."""

    retry_after_s: Distribution = Field(
        default_factory=lambda: Exponential.model_validate({"mean": 600}),
        description="seconds until a user whose registration failed opens the app again")
    max_tries: int = Field(default=3, ge=1, le=100, description="sessions a new user tries to register in before "
                           "giving up")


class FirstSession(Frozen):
    """A user's first session after joining the campaign: they came for the free order, so its
    first command tries it with probability `try_share` (else the usual mix)."""

    try_class: str = Field(default="help_me_buy", description="the command class a new campaign user tries first")
    try_share: float = Field(ge=0, le=1, description="probability that the first command of a user's first "
                             "campaign session is try_class")


class Launch(Frozen):
    """The campaign's launch and the users it brings (see the module docstring)."""

    at_s: float = Field(ge=0, le=1e8, description="when the campaign opens (simulated seconds)")
    activity: tuple[float, ...] | None = Field(
        default=None, description="24 hourly weights of phone activity (when people hear of things and act; "
                                  "normalised to mean 1); none = population.diurnal")
    active_without_cards: float = Field(gt=0, le=1, description="probability that a user holding no card opens the "
                                        "app on a given day (the ordinary daily active rate); users before the launch "
                                        "are population.daily_active_users / this many")
    active_with_cards: float = Field(gt=0, le=1, description="probability that a user holding an unused card at "
                                     "midnight opens the app that day")
    broadcast: Broadcast = Field(description="people reached from outside the app, and how fast they join")
    invitations: Invitations = Field(description="friends each user brings in, and when they come")
    first_session: FirstSession | None = Field(default=None, description="what a user does first after joining "
                                               "(none: the usual mix)")
    cards: Cards = Field(default_factory=Cards, description="free-order cards: earned by joining and inviting, "
                         "spent by ordering")
    registration: Registration = Field(default_factory=Registration, description="what a new user does when "
                                       "signing up fails")

    @field_validator("activity")
    @classmethod
    def _day(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is not None and (len(v) != 24 or any(x < 0 for x in v) or sum(v) <= 0):
            raise ValueError(f"must be 24 hourly weights >= 0 with a positive sum (got {len(v)} values)")
        return v


class Funnel(Frozen):
    """From "help me buy" to an order. A command's outcome is drawn when it starts, from the user's
    state: holding a card, the user goes ahead with `convert_with_card`, else changes their mind;
    holding none, goes ahead (paying in full) with `convert_without_card`, else stops ('no card
    left'). Going ahead, the order tool finds the item out of stock with `out_of_stock`, then the
    payment fails with `payment_error` (declined, or an agent's operational mistake). A command
    that stops runs only the stages before the stop (the order tool, the payment tool) and still
    succeeds for the client: the agent answered. A placed order spends one card if the user has one."""

    convert_with_card: float = Field(ge=0, le=1, description="P(go ahead | holds a card)")
    convert_without_card: float = Field(ge=0, le=1, description="P(go ahead and pay in full | holds no card)")
    out_of_stock: float = Field(default=0.0, ge=0, le=1, description="P(the item is unavailable | going ahead)")
    payment_error: float = Field(default=0.0, ge=0, le=1, description="P(the payment fails | in stock): declined "
                                 "or a mistake of the agent")
    order_tool: str = Field(default="order", description="the tool stage that creates the order")
    payment_tool: str = Field(default="payment", description="the tool stage that charges it")
    exactly_once: bool = Field(default=True, description="a retry never charges twice (idempotency keys, as in the "
                               "reference stack); false: every attempt that reaches the payment tool charges")


__all__ = ["Broadcast", "Cards", "FirstSession", "Funnel", "Invitations", "Launch", "Registration"]
