"""The rules a scenario names, each written once and used by every consumer.

The SimPy engine (`sim.des`), the fleet engine (`sim.fleet`), the reference stack
(`loadtest.stack`) and the load test (`loadtest`) differ only in how time passes (SimPy
events, array time steps, the wall clock); the rules have no clock of their own, so every
method takes `now` (seconds) where time matters, and every random choice takes its draw.

| family | module | what it decides |
|---|---|---|
| outcomes | `outcomes` | the names of what an attempt, a call or a login can end with |
| retry policy | `retry` | backoff and jitter, retry budget, adaptive throttling |
| attempts | `attempts` | the client's attempt loop: retry, re-login, give up, session lost after timeouts |
| deadlines | `deadlines` | which servers learn a client's deadline and drop work past it |
| admission | `admission` | bounded queues: discipline, priorities, shedding, eviction, deadline drop |
| rate limits | `ratelimit` | token buckets, global and per user |
| circuit breaker | `breaker` | closed, open, half-open with one probe |
| faults | `faults` | how faults in force combine, and what capacity is left |
| routing | `routing` | which LLM replica takes a new sequence |
| scaling | `scaling` | a scenario scaled up or down (arrivals and every capacity) |
| tokens | `tokens` | which sampled tokens an engine step counts as output (the first one too) |

Where the real stack legitimately differs from the model (a real torch engine against a model
of one), `loadtest/stack/README.md` says so, in one place.
"""
