"""The numeric engine: central differences per parameter block, in pure numpy.

It knows nothing of IPython or of how the cost is computed: it perturbs float64 working arrays *in
place*, calls ``cost()`` and compares with the analytic gradient it is handed.  One stage per file,
each importing only the ones above it in this map (no circles)::

    records.py  Block, Outcome, Interrupted, EvaluationError, index_of/fmt_index: what the stages
                hand each other                                          (imports nothing here)
    judge.py    Evidence, relative_error, verdict (the ONE place a status is decided), judge (the
                verdict plus the notes saying why), entry_evidence, overall_difference
                                                                         (records)
    sweep.py    full mode: central differences entry by entry, suspects re-stepped to the round-off
                floor, widening where round-off may explain a difference; the shared cost, J(θ),
                settings and evaluation count                           (records, judge)
    probes.py   fast mode: random directional probes, the shrinking probe, bisection, then
                localizing with the sweep                                (records, judge, sweep)
    runner.py   Engine: mode choice, one block at a time through its stage, interruption
                                                                         (records, judge, sweep, probes)

Other modules import from this package only (``from .engine import Engine, Outcome, ...``).
"""

from ..settings import Settings
from .judge import Evidence, coarse, overall_difference, relative_error, verdict
from .records import Block, EvaluationError, Interrupted, Outcome, fmt_index, index_of
from .runner import Engine

__all__ = [
    "Block",
    "Engine",
    "EvaluationError",
    "Evidence",
    "Interrupted",
    "Outcome",
    "Settings",
    "coarse",
    "fmt_index",
    "index_of",
    "overall_difference",
    "relative_error",
    "verdict",
]
