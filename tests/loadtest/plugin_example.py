"""A plugin for the tests: help_me_buy as one POST to the user's own order API."""

from loadtest.plugins import Attempt, command


@command("help_me_buy")
def buy(a: Attempt) -> str:
    prompt, output = a.tokens(0)
    r = a.post("/api/orders", "orders", json={"prompt_tokens": prompt, "max_tokens": output},
               headers={"Idempotency-Key": a.key})
    return "ok" if r.status_code == 200 else a.outcome(r)
