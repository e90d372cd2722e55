"""The campaign and its outages: calibration against published figures, metastability
analytics, vulnerability maps and mitigation comparisons. Pure numpy/SimPy; figures live in
`reports.campaign`.

    analyse(results) -> dict                 stuck after the trigger? time to recover, amplification
    load_with_overlay(base, overlay) -> Scenario   a scenario with a mitigation overlay applied
"""

from sim.campaign.metastability import Thresholds, analyse, format_analysis
from sim.campaign.overlay import load_overlay, load_with_overlay

__all__ = ["Thresholds", "analyse", "format_analysis", "load_overlay", "load_with_overlay"]
