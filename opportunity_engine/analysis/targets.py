"""The targets and benchmarks a view can be measured against, by name.

Apart from the opportunity maths (and without pandas) so that the command line can check its
arguments without loading what only some commands need.
"""
from __future__ import annotations

TARGETS = ("median", "top_quartile", "top_decile")
TARGET_LABELS = {"median": "Median", "top_quartile": "Top quartile", "top_decile": "Top decile"}
# A custom target "best_N" is the level of the best N % of units: the N-th percentile when lower is
# better, the (100 − N)-th when higher is better. best_50, best_25 and best_10 are the named targets.
CUSTOM_BEST = (10, 90)


def custom_target(best: int) -> str:
    return f"best_{int(best)}"


def custom_best(target: str) -> int | None:
    """N of a custom target "best_N" (10 ≤ N ≤ 90), else None."""
    if not target.startswith("best_") or not target[5:].isdigit():
        return None
    best = int(target[5:])
    return best if CUSTOM_BEST[0] <= best <= CUSTOM_BEST[1] else None


def target_label(target: str) -> str:
    best = custom_best(target)
    return f"Best {best}%" if best is not None else TARGET_LABELS[target]


def is_target(target: str | None) -> bool:
    return target is not None and (target in TARGETS or custom_best(target) is not None)


BENCHMARKS = ("peer", "internal")
BENCHMARK_LABELS = {"peer": "Peer trusts", "internal": "Internal (trust's own units)"}
