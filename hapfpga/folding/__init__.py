"""Resource-constrained folding: the fastest FINN folding that fits a board, with a proof of optimality.

``solver`` is the pure exact core on candidate tables; ``legal`` enumerates FINN's legal foldings;
``optimise`` wires both to the estimator.
"""

from __future__ import annotations

from .legal import KnobSpace, legal_foldings
from .optimise import Ceiling, FoldingResult, build_problem, least_loaded, optimise
from .options import FoldingOptions
from .solver import (
    Candidate,
    Edge,
    Problem,
    Solution,
    Tie,
    Unit,
    solve_max_fps,
    solve_min_cost,
    solve_min_max_utilisation,
)

__all__ = [
    "optimise",
    "least_loaded",
    "Ceiling",
    "FoldingOptions",
    "FoldingResult",
    "build_problem",
    "KnobSpace",
    "legal_foldings",
    "Candidate",
    "Edge",
    "Problem",
    "Solution",
    "Tie",
    "Unit",
    "solve_max_fps",
    "solve_min_cost",
    "solve_min_max_utilisation",
]
