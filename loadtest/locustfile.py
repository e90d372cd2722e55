"""The locustfile of `surge loadtest`: `locust -f loadtest/locustfile.py` with the plan in the
environment variable SURGE_LOADTEST_PLAN (written by `loadtest.runner`). It exposes the users and
the load shape of the plan's mode (open: one dispatcher per process; closed: ChatUser and
AgentBuyer weighted by the scenario's class mix)."""

from loadtest.locustrun import exported

globals().update(exported())
