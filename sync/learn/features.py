"""The training rows: every contact as of T, its features (the core's `observe`), its label and its rule score.

A contact is a row when it existed at T, was not yet converted at T and is scored (not excluded). Its label
says whether it reached the outcome after T within the horizon: the outcome is a date property, by default
HubSpot's date-entered-stage property of customers. Features are gathered sparsely (a column index and a
value per feature a contact has) in flat arrays, so 100,000 contacts stay within a few tens of megabytes.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sync.core.conditions import parse_date_ms
from sync.core.likelihood import Feature, observe
from sync.core.model import Contact, Event
from sync.core.rules import RuleSet
from sync.core.scoring import score_at
from sync.core.wire import LIFECYCLE_STAGE
from sync.errors import ConfigError, ConfigProblem

DEFAULT_OUTCOME = "hs_lifecyclestage_customer_date"
DEFAULT_HORIZON_DAYS = 90
DAY_MS = 86_400_000
PROPERTY_NAME = re.compile(r"^[a-z0-9_]{1,100}$")
# Never features: who the contact is (not what it is like), when it was made or touched, and anything that
# encodes a stage or the outcome: HubSpot's date-entered and time-in-stage properties among them.
IDENTITY = frozenset(
    {
        "email", "firstname", "lastname", "hs_object_id", "createdate", "lastmodifieddate", "phone", "mobilephone",
        "hs_lead_status", "hubspot_owner_id", "associatedcompanyid", "num_associated_deals", "closedate",
        "first_deal_created_date", "recent_deal_amount", "recent_deal_close_date", "total_revenue", "days_to_close",
        LIFECYCLE_STAGE,
    }
)  # fmt: skip
OUTCOME_PATTERNS = (
    re.compile(r"^hs_lifecyclestage_.*_date$"),
    re.compile(r"^hs_date_(entered|exited)_.*"),
    re.compile(r"^hs_time_in_.*"),
    re.compile(r"^hs_v2_date_(entered|exited)_.*"),
    re.compile(r"^hs_v2_time_in_.*"),
)


def parse_outcome_property(text: str) -> str:
    """`--outcome`: the name of a date property (e.g. hs_lifecyclestage_opportunity_date)."""
    name = text.strip()
    if not PROPERTY_NAME.match(name):
        raise ConfigError(
            [
                ConfigProblem(
                    "command line",
                    None,
                    "--outcome",
                    f"{text!r} is not a property name: name the date property the outcome is read from, "
                    f"e.g. {DEFAULT_OUTCOME} or hs_lifecyclestage_opportunity_date",
                )
            ]
        )
    return name


def never_a_feature(name: str, outcome: str, own: frozenset[str]) -> bool:
    """Whether a property may not become a feature: identity, the outcome, a stage's dates, leadsync's outputs."""
    return name in IDENTITY or name == outcome or name in own or any(p.match(name) for p in OUTCOME_PATTERNS)


def held_out(contact_id: str, seed: int, share: float) -> bool:
    """Whether a contact is in the held-out part: a hash of its id and the seed, so the split is reproducible
    and does not depend on the order contacts are read in."""
    digest = hashlib.blake2b(f"{seed}:{contact_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


@dataclass
class Counts:
    """What became of the contacts read."""

    read: int = 0
    rows: int = 0
    positives: int = 0
    not_yet_created: int = 0
    converted_before: int = 0
    excluded: int = 0
    failed: list[str] = field(default_factory=list)

    def json(self) -> dict[str, object]:
        return {
            "read": self.read,
            "rows": self.rows,
            "positives": self.positives,
            "negatives": self.rows - self.positives,
            "created_after_as_of": self.not_yet_created,
            "converted_before_as_of": self.converted_before,
            "excluded": self.excluded,
            "failed": len(self.failed),
        }


class Vocabulary:
    """Every candidate feature seen, with how many rows have it (all, and positive)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.features: list[Feature] = []
        self.rows: array[int] = array("q")
        self.positives: array[int] = array("q")

    def column(self, feature: Feature) -> int:
        key = feature.key
        column = self.index.get(key)
        if column is None:
            column = self.index[key] = len(self.features)
            self.features.append(feature)
            self.rows.append(0)
            self.positives.append(0)
        return column


@dataclass
class Rows:
    """The rows in compressed sparse row form (indptr, indices, data), with labels, rule scores and ids."""

    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    indptr: array[int] = field(default_factory=lambda: array("q", [0]))
    indices: array[int] = field(default_factory=lambda: array("q"))
    data: array[float] = field(default_factory=lambda: array("d"))
    labels: array[int] = field(default_factory=lambda: array("b"))
    scores: array[int] = field(default_factory=lambda: array("q"))
    held_out: array[int] = field(default_factory=lambda: array("b"))
    ids: list[str] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)

    def add(self, contact_id: str, observed: list[tuple[Feature, float]], label: bool, score: int, held: bool) -> None:
        vocabulary = self.vocabulary
        seen: set[int] = set()
        for feature, value in observed:
            column = vocabulary.column(feature)
            if column in seen:
                continue
            seen.add(column)
            self.indices.append(column)
            self.data.append(value)
            vocabulary.rows[column] += 1
            if label:
                vocabulary.positives[column] += 1
        self.indptr.append(len(self.indices))
        self.ids.append(contact_id)
        self.labels.append(1 if label else 0)
        self.scores.append(score)
        self.held_out.append(1 if held else 0)
        self.counts.rows += 1
        self.counts.positives += label


def gather(
    inputs: Iterable[tuple[Contact, list[Event]]],
    rules: RuleSet,
    as_of_ms: int,
    horizon_days: int,
    outcome: str,
    own: frozenset[str],
    *,
    seed: int = 7,
    held_out_share: float = 0.25,
    excluded_properties: frozenset[str] = frozenset(),
    progress: Callable[[int], None] | None = None,
) -> Rows:
    """The training rows of every contact read (see the module's docstring)."""
    rows = Rows()
    counts = rows.counts
    until = as_of_ms + horizon_days * DAY_MS
    for contact, events in inputs:
        counts.read += 1
        if progress is not None and counts.read % 1000 == 0:
            progress(counts.read)
        if contact.created_at_ms is not None and contact.created_at_ms > as_of_ms:
            counts.not_yet_created += 1
            continue
        reached = parse_date_ms(contact.properties.get(outcome))
        if reached is not None and reached <= as_of_ms:
            counts.converted_before += 1
            continue
        try:
            result = score_at(contact, events, rules, as_of_ms)
        except Exception as exc:  # a broken contact is reported, never stops the training
            counts.failed.append(f"contact {contact.id}: {type(exc).__name__}: {exc}")
            continue
        if result.excluded or result.model is None:
            counts.excluded += 1
            continue
        names = [n for n in contact.properties if n not in excluded_properties and not never_a_feature(n, outcome, own)]
        observed = observe(contact, events, as_of_ms, result.breakdown, names)
        label = reached is not None and reached <= until
        rows.add(contact.id, observed, label, result.score, held_out(contact.id, seed, held_out_share))
    if progress is not None:
        progress(counts.read)
    return rows
