"""Detectors, registered by their stable id in a plain dict (no global mutable state)."""

from __future__ import annotations

from poisonscan.detectors.base import BatchContext, Detector, Tokens


def registry() -> dict[str, type[Detector]]:
    """Map of detector id to class. Imported lazily so ``--help`` stays fast."""
    from poisonscan.detectors.trigger import TriggerDetector

    found: dict[str, type[Detector]] = {TriggerDetector.id: TriggerDetector}
    try:
        from poisonscan.detectors.campaign import CampaignDetector

        found[CampaignDetector.id] = CampaignDetector
    except ImportError:  # pragma: no cover - module not written yet
        pass
    try:
        from poisonscan.detectors.sft import SftTriggerDetector

        found[SftTriggerDetector.id] = SftTriggerDetector
    except ImportError:  # pragma: no cover - module not written yet
        pass
    return found


__all__ = ["BatchContext", "Detector", "Tokens", "registry"]
