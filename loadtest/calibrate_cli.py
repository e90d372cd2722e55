"""`surge calibrate`: registered on the `surge` app by `sim.cli`. Light at import: torch
and the stack's engine are imported inside the command."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from sim.cli.options import Sets, need_stack

_COST_LINE = re.compile(r"^(?P<indent>[ \t]+)cost_model:[ \t]*\{[^\n]*\}[ \t]*(#[^\n]*)?$", re.MULTILINE)


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)


def calibrate(
    scenario: Path,
    set_: Sets = None,
    repeats: Annotated[int, typer.Option(min=3, max=100, help="runs of each design step (median or mean)")] = 9,
    threads: Annotated[int | None, typer.Option(min=1, max=256, help="torch intra-op threads (default: the "
                                                 "stack's llm.torch_threads, else 1)")] = None,
    stat: Annotated[str, typer.Option(help="fit each step's 'median' (the engine's own cost) or 'mean' "
                                           "(with this machine's other load)")] = "median",
    idle_ms: Annotated[float, typer.Option(min=0, max=10_000, help="idle time before each timed step, ms: 0 = "
                                           "back to back (a saturated replica); ~30 = a replica that waits "
                                           "for work or sleeps out a slowdown fault (cold caches)")] = 0.0,
    replicas: Annotated[int, typer.Option(min=1, max=64, help="engines measured at once in threads of one "
                                          "process, as the stack runs its replicas")] = 1,
    clock: Annotated[str, typer.Option(help="time each step by the 'wall' clock or by its thread's 'cpu' clock "
                                             "(what the step costs without other load; for services.host)")] = "wall",
    write: Annotated[bool, typer.Option(help="write a calibrated copy of the scenario")] = False,
    out: Annotated[Path | None, typer.Option(help="where --write writes (default SCENARIO.calibrated.yaml "
                                                  "next to it); implies --write")] = None,
) -> None:
    """Fit the scenario's LLM cost model to the reference stack's engine on this machine; print it as YAML."""
    need_stack("calibrate")
    from loadtest.calibrate import CalibrationError, engine_spec, fit_table
    from loadtest.calibrate import calibrate as run
    from loadtest.stack.model import pick_device
    from sim.scenario import load_scenario

    if stat not in ("median", "mean"):
        raise CalibrationError(f"'--stat' must be 'median' or 'mean' (got {stat!r})")
    sc = load_scenario(scenario, set_ or [])
    spec = engine_spec(sc)
    model_cfg, llm_cfg = spec.model, spec.fleet
    n_threads = threads or spec.torch_threads or 1
    fit = run(sc, repeats=repeats, threads=n_threads, stat=stat, idle_s=idle_ms / 1e3, replicas=replicas, clock=clock)
    how = (f"{n_threads} torch thread(s), {replicas} engine(s) at once, {idle_ms:g} ms idle before each step, "
           f"{repeats} repeats, {stat}s of the {clock} clock")
    cost = fit.cost_model()
    flow = _flow(cost)
    errs = sorted(abs(e) for e in fit.rel_errors)
    lines = [
        f"surge calibrate: {scenario} ({model_cfg.layers} layers, hidden {model_cfg.hidden}, {model_cfg.heads} heads, "
        f"vocab {model_cfg.vocab}; max_num_seqs {llm_cfg.max_num_seqs}, max_batched_tokens "
        f"{llm_cfg.max_batched_tokens}) on {pick_device(spec.device)}: {how}",
        *fit_table(fit).splitlines(),
        f"R2 {fit.r2:.3f}; |relative error| median {100 * errs[len(errs) // 2]:.0f}%, max {100 * errs[-1]:.0f}% "
        f"over {len(errs)} design steps; measured in {fit.wall_s:.1f} s",
        f"as an override: --set 'services.llm.cost_model={flow}'",
    ]
    print("\n".join("# " + ln for ln in lines))
    print(yaml.safe_dump({"services": {"llm": {"cost_model": cost}}}, sort_keys=False, default_flow_style=None,
                         width=1000), end="")
    if write or out is not None:
        dest = out or scenario.with_name(f"{scenario.stem}.calibrated.yaml")
        note = f"{how}; {lines[-2]}"
        dest.write_text(calibrated_text(scenario, set_ or [], cost, note), encoding="utf-8")
        print(f"# wrote {dest}")


def _flow(cost: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in cost.items()) + "}"


def calibrated_text(scenario: Path, sets: list[str], cost: dict[str, Any], note: str) -> str:
    """The scenario's text with `services.llm.cost_model` replaced. Without overrides and with the
    cost model on one line, only that line and a comment right above it change (other comments
    stay); otherwise the overridden scenario is written out whole."""
    from sim.scenario.load import apply_override, parse_scenario, read_yaml

    text = scenario.read_text(encoding="utf-8")
    comment = f"# calibrated by `surge calibrate` on this machine: {note}"
    hits = list(_COST_LINE.finditer(text))
    if not sets and len(hits) == 1:
        ind = hits[0].group("indent")
        start = hits[0].start()
        above = text.rfind("\n", 0, max(0, start - 1)) + 1
        if text[above:start].strip().startswith("#"):  # a comment on the old coefficients goes with them
            start = above
        new = f"{ind}{comment}\n{ind}cost_model: {_flow(cost)}"
        out = text[:start] + new + text[hits[0].end():]
    else:
        data = read_yaml(scenario)
        for item in [*sets, f"services.llm.cost_model={_flow(cost)}"]:
            apply_override(data, item, str(scenario))
        out = f"{comment}\n" + yaml.safe_dump(data, sort_keys=False)
    parse_scenario(yaml.safe_load(out), str(scenario), scenario.parent)  # what we write must load
    return out
