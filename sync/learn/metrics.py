"""How well a ranking picks out the contacts who converted: ROC AUC, top-decile lift, precision at a volume,
and a calibration table. The same measures for the model's probability and the rule score, on the same
held-out contacts, so the two read side by side."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

DECILES = 10


@dataclass(frozen=True)
class Measures:
    """One ranking's measures on the held-out contacts."""

    auc: float
    top_decile_rate: float
    top_decile_lift: float
    precision_at_volume: float | None
    calibration: list[dict[str, float]]

    def json(self) -> dict[str, Any]:
        return {
            "roc_auc": round(self.auc, 4),
            "top_decile_rate": round(self.top_decile_rate, 4),
            "top_decile_lift": round(self.top_decile_lift, 3),
            "precision_at_mql_volume": None if self.precision_at_volume is None else round(self.precision_at_volume, 4),
            "calibration": self.calibration,
        }


def ranked(values: NDArray[np.float64]) -> NDArray[np.intp]:
    """Row positions from the highest value down; ties keep the rows' order (a stable sort)."""
    return np.argsort(-values, kind="stable")


def measures(values: NDArray[np.float64], labels: NDArray[np.int8], volume: int | None, mean_name: str) -> Measures:
    """The measures of one ranking (`values`, higher = likelier). `volume`: how many contacts the MQL threshold
    passes (precision among that many at the top); `mean_name` names the mean in the calibration rows."""
    n = len(labels)
    base = float(labels.mean())
    order = ranked(values)
    top = max(1, math.ceil(n / DECILES))
    top_rate = float(labels[order[:top]].mean())
    precision = float(labels[order[:volume]].mean()) if volume else None
    table = []
    for decile, part in enumerate(np.array_split(order, DECILES), start=1):
        if len(part) == 0:
            continue
        table.append(
            {
                "decile": decile,
                "contacts": len(part),
                mean_name: round(float(values[part].mean()), 4),
                "observed_rate": round(float(labels[part].mean()), 4),
            }
        )
    return Measures(float(roc_auc_score(labels, values)), top_rate, top_rate / base if base else 0.0, precision, table)
