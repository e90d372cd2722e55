"""Reports: what a capacity planner reads after a run, and what CI checks.

    render_report(run_dir, out_dir=None)       -> report.html, report.md, summary.json
    compare_runs([dir_a, dir_b, ...], out_dir)  -> compare.html, compare.md, comparison.json
    check_run(run_dir, baseline_file)           -> (markdown table, ok)
    write_baseline(run_dir, path)               -> a baseline file for check_run
    terminal.print_summary(results_or_summary)  -> a compact table on the terminal

A run folder is what `Results.write` produced; a replications folder holds rep-001/, rep-002/, ...
Reports read results and never run a simulation.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BaselineError", "RunSet", "check_run", "compare_runs", "load_runset", "render_report",
           "write_baseline"]

_WHERE = {"BaselineError": "reports.check", "check_run": "reports.check", "write_baseline": "reports.check",
          "compare_runs": "reports.compare", "render_report": "reports.render", "RunSet": "reports.runs",
          "load_runset": "reports.runs"}


def __getattr__(name: str) -> Any:
    # lazy, so that `reports.terminal` (called at the end of every `surge run`) does not import matplotlib
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
