"""A plain, loop-by-loop statement of the acceptance rule, to test the vectorised one."""

from __future__ import annotations

import numpy as np
from scipy import stats

NEVER_ACCEPT = 1.01


def cp_lower(k: float, n: float, level: float) -> float:
    return 0.0 if n == 0 or k == 0 else float(stats.beta.ppf(1 - level, k, n - k + 1))


def cp_upper(k: float, n: float, level: float) -> float:
    return 1.0 if n == 0 or k == n else float(stats.beta.ppf(level, k + 1, n - k))


def direct_rule(
    pred: np.ndarray,
    conf: np.ndarray,
    correct: np.ndarray,
    n_classes: int,
    target: float,
    level: float,
    min_support: int,
) -> tuple[list[float], list[str]]:
    """The documented rule, written as plainly as possible (unweighted Clopper-Pearson)."""

    def lowest(mask: np.ndarray) -> float | None:
        for t in sorted(set(conf[mask].tolist())):  # ascending: the first valid is the lowest
            sel = mask & (conf >= t)
            if cp_lower(correct[sel].sum(), sel.sum(), level) >= target:
                return t
        return None

    everything = np.ones(len(pred), dtype=bool)
    g = lowest(everything)
    thr, src = [], []
    for c in range(n_classes):
        mine = pred == c
        own = lowest(mine) if mine.sum() >= min_support else None
        if own is not None:
            thr.append(own)
            src.append("class")
            continue
        at_g = mine & (conf >= g) if g is not None else mine
        contradicted = (
            g is not None
            and at_g.any()
            and cp_upper(correct[at_g].sum(), at_g.sum(), level) < target
        )
        if g is not None and not contradicted:
            thr.append(g)
            src.append("global")
        else:
            thr.append(NEVER_ACCEPT)
            src.append("unreachable")
    return thr, src
