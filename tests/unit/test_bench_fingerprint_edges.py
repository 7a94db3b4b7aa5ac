"""The fingerprint-edges benchmark measures every phase of its path over the importable service."""

from __future__ import annotations

from bench.fingerprint_edges import PHASES, measure


def test_measure_times_every_phase() -> None:
    """A small run gives a non-negative time for each phase, and the typed path runs end to end."""
    result = measure(pairs=20, rounds=1)
    assert list(result) == list(PHASES)
    assert all(value >= 0 for value in result.values())
    assert result["audit"] > 0, "hashing two rows per pair takes measurable time"
