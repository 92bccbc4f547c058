"""Instruments that measure where RL's ceiling is: pass@k, entropy law, compute curves."""

from rljax.analysis.fits import fit_entropy_law, fit_sigmoid, sigmoid_curve
from rljax.analysis.passk import pass_at_k, pass_at_k_curve

__all__ = ["pass_at_k", "pass_at_k_curve", "fit_entropy_law", "fit_sigmoid", "sigmoid_curve"]
