"""Results: one format for the simulator and the load test (and any engine added later)."""

from sim.results.files import FORMAT, Results, json_safe, strict_json, writable_folder
from sim.results.histogram import GAMMA, LogHistogram, bucket_value
from sim.results.recorder import HIST_METRICS, REASONS, IntervalHistogram, Recorder
from sim.results.summary import first_interval, summarize, window_histogram

__all__ = [
    "FORMAT", "GAMMA", "HIST_METRICS", "REASONS", "IntervalHistogram", "LogHistogram", "Recorder", "Results",
    "bucket_value", "first_interval", "json_safe", "strict_json", "summarize", "window_histogram",
    "writable_folder",
]
