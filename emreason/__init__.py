"""emreason: learn to reason (question -> rationale -> answer) by expectation maximization.

The E-step draws rationales from a proposal distribution (rejection sampling, STaR, PPS) and keeps
the ones that reach the correct answer; the M-step fine-tunes on them. See README.md and
ARCHITECTURE.md.
"""

__version__ = "0.1.0"
