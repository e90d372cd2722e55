"""The SimPy engine: one request at a time, exact and traceable."""

from sim.des.engine import simulate

__all__ = ["simulate"]
