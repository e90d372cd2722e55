"""The campaign and its outages: calibration against published figures, metastability
analytics, vulnerability maps and mitigation comparisons. Pure numpy/SimPy; figures live in
`reports.campaign`.

    analyse(results, scenario=None) -> dict        stuck after the trigger? time to recover, amplification
    load_with_overlay(base, overlay) -> Scenario   a scenario with a mitigation overlay applied
    calibration       published figures, growth and diurnal models, expected vs simulated totals
    explore           explore_vulnerability(path, Grid(...)) -> VulnerabilityMap (process pool)
    mitigations       compare_mitigations(base, overlays) -> one row of KPIs per variant
"""

from sim.campaign.metastability import Thresholds, analyse, format_analysis, losses
from sim.campaign.overlay import load_overlay, load_with_overlay

__all__ = ["Thresholds", "analyse", "format_analysis", "losses", "load_overlay", "load_with_overlay"]
