"""`python -m loadtest.stack --port P [--scenario FILE] [--set a.b=1] [--scale F] [--db FILE]
[--options-json JSON]`: the process `surge stack serve` and `surge loadtest --start-stack` run.

Secrets come from the environment or are generated (`loadtest.credentials`); at start the stack
writes the admin token and the user secret to `credentials.env` beside its order database
(mode 0600) and prints that file's path, never the secrets themselves.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from loadtest.credentials import ADMIN_ENV, USERS_ENV, write_env_file
from loadtest.stack.options import StackOptions, default_scenario
from sim.errors import ScenarioError, SurgeError
from sim.rules.scaling import scale_scenario
from sim.scenario import Scenario


def stack_options(options_json: str | None, db: str | None, flag: str = "--options-json") -> StackOptions:
    """`StackOptions` from a JSON object of its fields (unknown keys refused) and `--db`."""
    opts = StackOptions()
    if options_json:
        try:
            data: Any = json.loads(options_json)
        except json.JSONDecodeError as e:
            raise ScenarioError(f"{flag}: not valid JSON ({e.msg} at character {e.pos})") from None
        if not isinstance(data, dict):
            raise ScenarioError(f"{flag}: must be a JSON object (got {type(data).__name__})")
        known = {f.name for f in dataclasses.fields(StackOptions)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ScenarioError(f"{flag}: unknown option(s) {unknown} (known: {sorted(known)})")
        opts = dataclasses.replace(opts, **data)
    if db:
        opts = opts.with_(db_path=db)
    return opts


def stack_scenario(path: str | None, sets: list[str], scale: float) -> Scenario:
    """The scenario the stack serves: a file (with overrides), else the default; scaled."""
    from sim.scenario import load_scenario

    sc = load_scenario(path, sets) if path else default_scenario()
    return sc if scale == 1 else scale_scenario(sc, scale)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.stack", description="Serve the surge reference stack.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--scenario", help="scenario YAML the stack serves (default: its own small workload)")
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help="scenario override (repeatable)")
    p.add_argument("--scale", type=float, default=1.0, help="scale the scenario (sim.rules.scaling; default 1)")
    p.add_argument("--options-json", help='stack options, e.g. \'{"torch_threads": 1}\' (see StackOptions)')
    p.add_argument("--db", help="SQLite file for orders (default: a folder under the system temp dir)")
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    try:
        if not 1 <= args.port <= 65535:
            raise ScenarioError(f"--port must be in 1..65535 (got {args.port})")
        sc = stack_scenario(args.scenario, args.set or [], args.scale)
        opts = stack_options(args.options_json, args.db)
        Path(opts.db_path).parent.mkdir(parents=True, exist_ok=True)
        creds = write_env_file(Path(opts.db_path).parent / "credentials.env",
                               {ADMIN_ENV: opts.admin_token, USERS_ENV: opts.user_secret})
    except (SurgeError, TypeError, OSError) as e:  # a user's mistake: one line, exit 2
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 2
    from loadtest.stack.server import serve

    print(f"surge stack: serving {sc.name!r} on http://{args.host}:{args.port} (orders in {opts.db_path})\n"
          f"surge stack: admin token and user secret in {creds} (export them to drive this stack: "
          f"set -a; . {creds}; set +a)", file=sys.stderr, flush=True)
    serve(sc, opts, args.host, args.port, args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
