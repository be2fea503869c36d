"""Scenario generators for the quality benchmarks. They know the planted poison; the detectors do not."""
