"""The fleet engine: the same scenarios as the SimPy engine, as counts in time steps, for the
whole fleet (millions of users, thousands of replicas) and batches of replications."""

from sim.fleet.engine import FleetSim, simulate, simulate_batch

__all__ = ["FleetSim", "simulate", "simulate_batch"]
