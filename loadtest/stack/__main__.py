"""`python -m loadtest.stack --port P [--scenario FILE] [--set a.b=1] [--config-json JSON]`."""

from __future__ import annotations

import argparse
import json
import sys

from loadtest.stack.config import StackConfig
from loadtest.stack.scenario_map import config_from_dict
from sim.errors import SurgeError


def build_config(args: argparse.Namespace) -> StackConfig:
    cfg = StackConfig()
    if args.scenario:
        from sim.scenario import load_scenario

        cfg = StackConfig.from_scenario(load_scenario(args.scenario, overrides=args.set or []), scale=args.scale)
    if args.config_json:
        cfg = config_from_dict(cfg, json.loads(args.config_json))
    if args.db:
        cfg = cfg.with_(db_path=args.db)
    return cfg


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.stack", description="Serve the surge reference stack.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--scenario", help="scenario YAML to configure the stack from")
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help="scenario override (repeatable)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply scenario capacities (default 1)")
    p.add_argument("--config-json", help='stack config changes, e.g. \'{"llm": {"replicas": 1}}\'')
    p.add_argument("--db", help="SQLite file for orders (default surge-orders.db)")
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    try:
        cfg = build_config(args)
    except (SurgeError, ValueError, TypeError, OSError) as e:  # a user's mistake: one line, exit 2
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 2
    from loadtest.stack.server import serve

    serve(cfg, args.host, args.port, args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
