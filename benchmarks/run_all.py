"""Run every benchmark script in this folder (`bench_*.py`, each as its own process) and print
their tables, then one line per script with its exit status (0 = its targets were met).

    .venv/bin/python benchmarks/run_all.py [--only engine,memory] [--skip locust] [--timeout 3600]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated name parts: run only matching scripts")
    ap.add_argument("--skip", default="", help="comma-separated name parts: skip matching scripts")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per script")
    args = ap.parse_args()
    only = [s for s in args.only.split(",") if s]
    skip = [s for s in args.skip.split(",") if s]
    scripts = [p for p in sorted(HERE.glob("bench_*.py"))
               if (not only or any(s in p.stem for s in only)) and not any(s in p.stem for s in skip)]
    if not scripts:
        print("no benchmark scripts matched", file=sys.stderr)
        return 2
    verdicts = []
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        t = time.perf_counter()
        try:
            code = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            code = -1
        verdicts.append((script.name, code, time.perf_counter() - t))
    print("\n## benchmarks\n")
    print("| script | exit | wall s | verdict |")
    print("|---|---|---|---|")
    for name, code, wall in verdicts:
        verdict = "PASS" if code == 0 else "TIMEOUT" if code == -1 else "FAIL"
        print(f"| {name} | {code} | {wall:.0f} | {verdict} |")
    return 0 if all(code == 0 for _, code, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
