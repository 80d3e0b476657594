"""`leadsync train`: fit the learned likelihood and measure it against the rule score on held-out contacts.

A regularised (L2) logistic regression on the features of `features.gather`, classes weighted to balance
(converters are few), fitted on standardised columns and stored per unit of each feature's own value. The
intercept is moved back by the log of the training odds, which undoes the balancing: the probabilities read
as rates again (the calibration table shows how close). Everything is deterministic: the same snapshot,
rules and options give the same model file, hash and all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

from sync.core.likelihood import Feature
from sync.core.rules import RuleSet
from sync.learn.features import Rows
from sync.learn.metrics import Measures, measures
from sync.reports.text import iso_ms

MIN_POSITIVES = 30
DEFAULT_MIN_ROWS = 20  # a feature fewer training contacts have is noise, not signal
DEFAULT_C = 0.03  # inverse regularisation strength, on standardised columns
MQL = "marketingqualifiedlead"


class TrainingRefusedError(Exception):
    """Training cannot give a model worth writing (too few converters, one class, a leaking feature)."""


@dataclass(frozen=True)
class Trained:
    """A fitted model with what it was fitted on and how it measures against the rule score."""

    features: list[Feature]
    coefficients: list[float]
    scales: list[float]
    intercept: float
    model: Measures
    rule: Measures
    mql_threshold: float | None
    mql_volume: int | None
    train_rows: int
    train_positives: int
    test_rows: int
    test_positives: int

    def weights(self) -> list[tuple[Feature, float, float]]:
        """(feature, coefficient, coefficient x scale), strongest first by the last: the ranking on one footing."""
        out = [(f, c, c * s) for f, c, s in zip(self.features, self.coefficients, self.scales, strict=True)]
        return sorted(out, key=lambda t: (-abs(t[2]), t[0].key))

    def metrics_json(self) -> dict[str, Any]:
        return {
            "held_out": {"contacts": self.test_rows, "positives": self.test_positives},
            "mql_threshold": self.mql_threshold,
            "mql_volume": self.mql_volume,
            "model": self.model.json(),
            "rule_score": self.rule.json(),
            "auc_gain": round(self.model.auc - self.rule.auc, 4),
        }


def mql_threshold(rules: RuleSet) -> float | None:
    """The lowest score that makes a contact an MQL in any model (None: no model has that threshold)."""
    found = [t.min_score for m in rules.spec.models for t in m.lifecycle.thresholds if t.stage == MQL]
    scores = [s for s in found if s is not None]
    return min(scores) if scores else None


def select(rows: Rows, min_rows: int) -> list[int]:
    """The columns kept: had by at least `min_rows` rows and not by every row."""
    total = rows.counts.rows
    vocab = rows.vocabulary
    return [i for i in range(len(vocab.features)) if min_rows <= vocab.rows[i] < total]


def check_counts(rows: Rows) -> None:
    """Refuse, naming the counts, when the rows cannot train a model: a single class or under 30 converters."""
    counts = rows.counts
    positives, negatives = counts.positives, counts.rows - counts.positives
    summary = (
        f"{counts.rows} contacts not yet converted at the as-of date: {positives} converted within the horizon, "
        f"{negatives} did not (of {counts.read} read; {counts.converted_before} had converted before, "
        f"{counts.not_yet_created} were created after, {counts.excluded} are excluded)"
    )
    if positives == 0 or negatives == 0:
        raise TrainingRefusedError(f"only one class: {summary}; no model written")
    if positives < MIN_POSITIVES:
        raise TrainingRefusedError(
            f"too few converters to learn from: {positives} (at least {MIN_POSITIVES} needed); {summary}; "
            "no model written. Move --as-of earlier, lengthen --horizon-days, or choose another --outcome"
        )
    held = np.frombuffer(rows.held_out, dtype=np.int8).astype(bool)
    labels = np.frombuffer(rows.labels, dtype=np.int8)
    for name, part in (("training", ~held), ("held-out", held)):
        got = int(labels[part].sum())
        if got == 0 or got == int(part.sum()):
            raise TrainingRefusedError(
                f"the {name} part has only one class ({got} of {int(part.sum())}); no model written"
            )


def matrix(rows: Rows, columns: list[int]) -> Any:
    """The rows as a sparse matrix of the kept columns."""
    full = sparse.csr_matrix(
        (
            np.frombuffer(rows.data, dtype=np.float64),
            np.frombuffer(rows.indices, dtype=np.int64),
            np.frombuffer(rows.indptr, dtype=np.int64),
        ),
        shape=(rows.counts.rows, len(rows.vocabulary.features)),
    )
    return full[:, columns].tocsr()


def leak_check(x: Any, labels: NDArray[np.int8], features: list[Feature]) -> None:
    """Refuse features that separate the classes perfectly: every converter on one side of a value, every
    other contact on the other. A real signal never does; a property that records the outcome does."""
    dense_pos = x[labels == 1]
    dense_neg = x[labels == 0]
    pos_min = _column_min(dense_pos)
    pos_max = np.asarray(dense_pos.max(axis=0).todense()).ravel()
    neg_min = _column_min(dense_neg)
    neg_max = np.asarray(dense_neg.max(axis=0).todense()).ravel()
    leaking = [f.key for i, f in enumerate(features) if pos_min[i] > neg_max[i] or neg_min[i] > pos_max[i]]
    if leaking:
        raise TrainingRefusedError(
            "features that separate converters from the rest perfectly, so they record the outcome rather than "
            f"predict it: {', '.join(leaking)}; leave their properties out (--exclude PROPERTY) and train again"
        )


def _column_min(x: Any) -> NDArray[np.float64]:
    return np.asarray(x.min(axis=0).todense()).ravel()


def fit(rows: Rows, rules: RuleSet, *, min_rows: int = DEFAULT_MIN_ROWS, c: float = DEFAULT_C) -> Trained:
    """Fit on the training part and measure on the held-out part; TrainingRefusedError when it cannot."""
    check_counts(rows)
    columns = select(rows, min_rows)
    if not columns:
        raise TrainingRefusedError(f"no feature is had by at least {min_rows} contacts; no model written")
    features = [rows.vocabulary.features[i] for i in columns]
    x = matrix(rows, columns)
    labels = np.frombuffer(rows.labels, dtype=np.int8)
    leak_check(x, labels, features)
    held = np.frombuffer(rows.held_out, dtype=np.int8).astype(bool)
    x_train, y_train = x[~held], labels[~held]
    mean = np.asarray(x_train.mean(axis=0)).ravel()
    mean_sq = np.asarray(x_train.multiply(x_train).mean(axis=0)).ravel()
    scales = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    scales[scales == 0] = 1.0
    unscale = sparse.diags(1.0 / scales)
    learner = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, solver="lbfgs")
    learner.fit(x_train @ unscale, y_train)
    coefficients = learner.coef_.ravel() / scales
    share = float(y_train.mean())
    # Balanced weights fit as if half the contacts converted; the training odds put the intercept back.
    intercept = float(learner.intercept_[0]) + math.log(share / (1 - share))
    x_test, y_test = x[held], labels[held]
    probability = 1.0 / (1.0 + np.exp(-(x_test @ coefficients + intercept)))
    rule_scores = np.frombuffer(rows.scores, dtype=np.int64)[held].astype(np.float64)
    threshold = mql_threshold(rules)
    volume = int((rule_scores >= threshold).sum()) if threshold is not None else None
    return Trained(
        features=features,
        coefficients=[float(v) for v in coefficients],
        scales=[float(v) for v in scales],
        intercept=intercept,
        model=measures(probability, y_test, volume, "mean_probability"),
        rule=measures(rule_scores, y_test, volume, "mean_score"),
        mql_threshold=threshold,
        mql_volume=volume,
        train_rows=len(y_train),
        train_positives=int(y_train.sum()),
        test_rows=len(y_test),
        test_positives=int(y_test.sum()),
    )


def model_content(
    trained: Trained,
    rules: RuleSet,
    rows: Rows,
    *,
    as_of_ms: int,
    horizon_days: int,
    outcome: str,
    seed: int,
    source: str,
) -> dict[str, Any]:
    """The model file's content (sealed and written by `sync.config.model_file.write_model`)."""
    features = []
    for feature, coefficient, _ in trained.weights():
        scale = trained.scales[trained.features.index(feature)]
        entry: dict[str, Any] = {"kind": feature.kind, "name": feature.name}
        if feature.value:
            entry["value"] = feature.value
        if feature.low is not None:
            entry["low"] = feature.low
        if feature.high is not None:
            entry["high"] = feature.high
        if feature.days:
            entry["days"] = feature.days
        entry.update(label=feature.label, coefficient=round(coefficient, 6), scale=round(scale, 6))
        features.append(entry)
    return {
        "ruleset_version": rules.version,
        "intercept": round(trained.intercept, 6),
        "features": features,
        "training": {
            "as_of": iso_ms(as_of_ms),
            "horizon_days": horizon_days,
            "outcome": outcome,
            "source": source,
            "seed": seed,
            "contacts": rows.counts.json(),
            "train": {"contacts": trained.train_rows, "positives": trained.train_positives},
        },
        "metrics": trained.metrics_json(),
    }
