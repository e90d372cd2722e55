"""Probability distributions a scenario can name (`type:` key in YAML).

A distribution is one small contract: `sample_n(rng, n)` draws n values with an explicit
`numpy.random.Generator`; it knows its `mean` and `variance`; its repr reads like its YAML
(`Exponential(mean=0.125)`). Engines draw through `Sampler`, which pre-draws blocks so the
per-value cost is a list pop, not a numpy call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sim.datafiles import read_column, resolve_data_path

_BIG = 1e12  # upper bound on any parameter: larger numbers are typos, not scenarios


class _Dist(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def mean(self) -> float:
        raise NotImplementedError

    @property
    def variance(self) -> float:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> float:
        """One value (slow path; engines use `Sampler`)."""
        return float(self.sample_n(rng, 1)[0])

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.model_dump(exclude={"type"}).items() if v is not None)
        return f"{type(self).__name__}({fields})"

    def __str__(self) -> str:
        return repr(self)  # the subclass's repr (a class-level alias would bind this base one)


class Constant(_Dist):
    """Always `value`."""

    type: Literal["constant"] = Field(default="constant", description="always the same value")
    value: float = Field(ge=0, le=_BIG, description="the value, in the unit of the field that holds it")

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0


class Exponential(_Dist):
    """Exponential with the given `mean` (or `rate` = 1/mean)."""

    type: Literal["exponential"] = Field(default="exponential", description="memoryless (CV 1)")
    mean_: float | None = Field(default=None, alias="mean", gt=0, le=_BIG, description="the mean, in the field's unit")
    rate: float | None = Field(default=None, gt=0, le=_BIG, description="1 / mean (give mean or rate)")

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True)

    @model_validator(mode="after")
    def _one_of(self) -> Exponential:
        if (self.mean_ is None) == (self.rate is None):
            raise ValueError("give exactly one of 'mean' or 'rate'")
        return self

    @property
    def mean(self) -> float:
        return self.mean_ if self.mean_ is not None else 1.0 / float(self.rate)  # type: ignore[arg-type]

    @property
    def variance(self) -> float:
        return self.mean**2

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean, n)

    def __repr__(self) -> str:
        return f"Exponential(mean={self.mean!r})" if self.mean_ is not None else f"Exponential(rate={self.rate!r})"


class Uniform(_Dist):
    """Uniform on [low, high]."""

    type: Literal["uniform"] = Field(default="uniform", description="every value in [low, high] equally likely")
    low: float = Field(ge=0, le=_BIG, description="smallest value, in the field's unit")
    high: float = Field(ge=0, le=_BIG, description="largest value (>= low), in the field's unit")

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"'high' must be >= 'low' (got low={self.low}, high={self.high})")
        return self

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12


class LogNormal(_Dist):
    """Log-normal given by its `mean` and coefficient of variation `cv` (std/mean)."""

    type: Literal["lognormal"] = Field(default="lognormal", description="skewed with a long right tail")
    mean_: float = Field(alias="mean", gt=0, le=_BIG, description="the mean, in the field's unit")
    cv: float = Field(gt=0, le=100, description="coefficient of variation: standard deviation / mean")

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True)

    def _params(self) -> tuple[float, float]:
        s2 = math.log1p(self.cv**2)
        return math.log(self.mean_) - s2 / 2, math.sqrt(s2)

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        mu, sigma = self._params()
        return rng.lognormal(mu, sigma, n)

    @property
    def mean(self) -> float:
        return self.mean_

    @property
    def variance(self) -> float:
        return (self.cv * self.mean_) ** 2

    def __repr__(self) -> str:
        return f"LogNormal(mean={self.mean_!r}, cv={self.cv!r})"


class Gamma(_Dist):
    """Gamma given by its `mean` and coefficient of variation `cv` (shape = 1/cv^2)."""

    type: Literal["gamma"] = Field(default="gamma", description="cv < 1: more regular than exponential; > 1: burstier")
    mean_: float = Field(alias="mean", gt=0, le=_BIG, description="the mean, in the field's unit")
    cv: float = Field(gt=0, le=100, description="coefficient of variation: standard deviation / mean")

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True)

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, self.mean_ / shape, n)

    @property
    def mean(self) -> float:
        return self.mean_

    @property
    def variance(self) -> float:
        return (self.cv * self.mean_) ** 2

    def __repr__(self) -> str:
        return f"Gamma(mean={self.mean_!r}, cv={self.cv!r})"


class Weibull(_Dist):
    """Weibull with `shape` k and `scale` (mean = scale x Gamma(1 + 1/k))."""

    type: Literal["weibull"] = Field(default="weibull", description="shape < 1: heavy tail; > 1: concentrated")
    shape: float = Field(gt=0, le=1000, description="shape k (1 = exponential)")
    scale: float = Field(gt=0, le=_BIG, description="scale, in the field's unit")

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.scale * rng.weibull(self.shape, n)

    @property
    def mean(self) -> float:
        return self.scale * math.gamma(1 + 1 / self.shape)

    @property
    def variance(self) -> float:
        return self.scale**2 * (math.gamma(1 + 2 / self.shape) - math.gamma(1 + 1 / self.shape) ** 2)


class Pareto(_Dist):
    """Pareto (type I): values >= `scale` (the minimum), tail index `shape`."""

    type: Literal["pareto"] = Field(default="pareto", description="power-law tail: rare very large values")
    shape: float = Field(gt=0, le=1000, description="tail index (<= 1: infinite mean; <= 2: infinite variance)")
    scale: float = Field(gt=0, le=_BIG, description="the smallest value, in the field's unit")

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.scale * (1.0 + rng.pareto(self.shape, n))

    @property
    def mean(self) -> float:
        return math.inf if self.shape <= 1 else self.shape * self.scale / (self.shape - 1)

    @property
    def variance(self) -> float:
        a, m = self.shape, self.scale
        return math.inf if a <= 2 else m * m * a / ((a - 1) ** 2 * (a - 2))


class Empirical(_Dist):
    """Resamples the values of one column of a CSV (or JSONL) file shipped with the scenarios.

    `file` is relative to the scenario file that names it and must lie in its folder
    (`sim.datafiles`: size cap, one reader for validation and runs).
    """

    type: Literal["empirical"] = Field(default="empirical", description="resample measured values")
    file: str = Field(description="CSV or JSON Lines file, relative to the scenario file and inside its folder; "
                                  "at most 64 MB")
    column: str = Field(description="column of the values (numbers >= 0, in the field's unit)")
    values: tuple[float, ...] = Field(default=(), exclude=True, repr=False,
                                      description="the values themselves, instead of reading `file`")

    @model_validator(mode="before")
    @classmethod
    def _load(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and "file" in data and "column" in data and not data.get("values"):
            ctx = info.context or {}
            path = resolve_data_path(str(data["file"]), ctx.get("base_dir", "."), ctx.get("data_dir"))
            data = {**data, "values": read_column(path, str(data["column"]))}
        return data

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.asarray(self.values)[rng.integers(0, len(self.values), n)]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def variance(self) -> float:
        return float(np.var(self.values))

    def __repr__(self) -> str:
        return f"Empirical(file={self.file!r}, column={self.column!r})"


class Component(BaseModel):
    """One part of a mixture."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    weight: float = Field(gt=0, le=1, description="probability of drawing from this part (weights sum to 1)")
    dist: Distribution = Field(description="the part's distribution")


class Mixture(_Dist):
    """A mixture: with probability `weight` draw from `dist` (weights sum to 1)."""

    type: Literal["mixture"] = Field(default="mixture", description="several populations in one (e.g. short "
                                                                    "and long prompts)")
    components: tuple[Component, ...] = Field(min_length=1, description="the parts and their weights")

    @field_validator("components")
    @classmethod
    def _weights_sum_to_one(cls, v: tuple[Component, ...]) -> tuple[Component, ...]:
        total = sum(c.weight for c in v)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"component weights must sum to 1 (got {total:g})")
        return v

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        which = rng.choice(len(self.components), size=n, p=[c.weight for c in self.components])
        out = np.empty(n)
        for i, c in enumerate(self.components):
            mask = which == i
            out[mask] = c.dist.sample_n(rng, int(mask.sum()))
        return out

    @property
    def mean(self) -> float:
        return sum(c.weight * c.dist.mean for c in self.components)

    @property
    def variance(self) -> float:
        m = self.mean
        return sum(c.weight * (c.dist.variance + (c.dist.mean - m) ** 2) for c in self.components)

    def __repr__(self) -> str:
        parts = ", ".join(f"{c.weight!r}: {c.dist!r}" for c in self.components)
        return f"Mixture({parts})"


Distribution = Annotated[
    Constant | Exponential | Uniform | LogNormal | Gamma | Weibull | Pareto | Empirical | Mixture,
    Field(discriminator="type"),
]
Component.model_rebuild()
Mixture.model_rebuild()


class Sampler:
    """Fast scalar draws from a distribution: pre-draws `block` values at a time.

    Draw order is a pure function of the generator state, so runs stay reproducible.
    """

    __slots__ = ("_dist", "_rng", "_block", "_buf")

    def __init__(self, dist: _Dist, rng: np.random.Generator, block: int = 4096) -> None:
        self._dist, self._rng, self._block = dist, rng, block
        self._buf: list[float] = []

    def __call__(self) -> float:
        buf = self._buf
        if not buf:
            buf.extend(self._dist.sample_n(self._rng, self._block)[::-1].tolist())
        return buf.pop()


def sampler(dist: _Dist | None, rng: np.random.Generator, block: int = 4096) -> Callable[[], float]:
    """A zero-argument draw function; a missing distribution always gives 0."""
    if dist is None:
        return lambda: 0.0
    if isinstance(dist, Constant):
        v = dist.value
        return lambda: v
    return Sampler(dist, rng, block)
