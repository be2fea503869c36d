"""The scan: passes over per-shard work, merged in a fixed order, then findings."""

from poisonscan.engine.scan import InputSummary, ScanResult, run_scan

__all__ = ["InputSummary", "ScanResult", "run_scan"]
