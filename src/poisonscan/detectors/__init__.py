"""Detectors, registered by their stable id in a plain dict (no global mutable state)."""

from __future__ import annotations

from poisonscan.detectors.base import BatchContext, Detector, Tokens


def registry() -> dict[str, type[Detector]]:
    """Map of detector id to class, in the order reports list them. Imported lazily so that
    ``poisonscan --help`` does not load numba kernels."""
    from poisonscan.detectors.campaign import CampaignDetector
    from poisonscan.detectors.sft import SftTriggerDetector
    from poisonscan.detectors.trigger import TriggerDetector

    return {cls.id: cls for cls in (TriggerDetector, CampaignDetector, SftTriggerDetector)}


__all__ = ["BatchContext", "Detector", "Tokens", "registry"]
