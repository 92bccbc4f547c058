"""Instruments that measure where RL's ceiling is (pass@k and capability boundary)."""

from rljax.analysis.passk import pass_at_k, pass_at_k_curve

__all__ = ["pass_at_k", "pass_at_k_curve"]
