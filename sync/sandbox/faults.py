"""Fault injection with a seeded RNG, so a failing run can be replayed exactly.

One draw per API request picks at most one fault among those that apply to it
(`partial` applies to batch updates only), with the SPEC's probabilities:

- 429: a TEN_SECONDLY_ROLLING 429 (SECONDLY on search), not counted against the budget;
- 500 / 503: an error answer; nothing is applied;
- timeout: the request is processed (a write IS applied), then the answer is held for
  `timeout_seconds` and the connection closed without a word;
- reset: the connection is reset (RST) without an answer. For a write, a coin flip of the
  same RNG decides whether it was applied first: the client cannot know, as with HubSpot;
- partial: a batch update answers 207, with a random non-empty subset of its inputs failed
  by a retriable error (INTERNAL_ERROR or RATE_LIMITS) and not applied; the rest applied;
- offset: an email events request carrying an offset finds it expired (the 400 HubSpot's
  short-lived offsets give), as if the client had paused too long between pages.

With requests arriving concurrently, the draws are handed out in arrival order; a test that
wants a replayable sequence sends its requests one at a time.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

KINDS = ("429", "500", "503", "timeout", "reset", "partial", "offset")
PARTIAL_CATEGORIES = ("INTERNAL_ERROR", "RATE_LIMITS")


def parse_rates(text: str | None, kinds: Sequence[str], what: str) -> dict[str, float]:
    """'KIND=PROBABILITY,...' with each KIND one of `kinds` (a `what`, as the errors call it); '' or 'off': none."""
    if text is None or text.strip().lower() in ("", "off", "none"):
        return {}
    rates: dict[str, float] = {}
    for part in text.split(","):
        key, sep, raw = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in kinds:
            raise ValueError(f"bad {what} {part.strip()!r}: use KIND=PROBABILITY with KIND one of {', '.join(kinds)}")
        try:
            rate = float(raw)
        except ValueError:
            raise ValueError(f"bad {what} {part.strip()!r}: {raw.strip()!r} is not a probability") from None
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"bad {what} {part.strip()!r}: a probability is between 0 and 1")
        rates[key] = rate
    return rates


@dataclass(frozen=True)
class FaultSpec:
    rates: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        """'429=0.05,500=0.02,503=0.02,timeout=0.01,reset=0.01,partial=0.05,offset=0.1'; '' or 'off' for none."""
        rates = parse_rates(text, KINDS, "fault")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities add up to {sum(rates.values()):.3f}, more than 1")
        return cls(rates)

    def describe(self) -> str:
        return ",".join(f"{k}={v:g}" for k, v in self.rates.items()) or "off"


class FaultInjector:
    def __init__(self, spec: FaultSpec, seed: int, timeout_seconds: float) -> None:
        self._lock = threading.Lock()
        self.configure(spec, seed, timeout_seconds)

    def configure(self, spec: FaultSpec, seed: int, timeout_seconds: float) -> None:
        with self._lock:
            self.spec = spec
            self.seed = seed
            self.timeout_seconds = timeout_seconds
            self._rng = random.Random(seed)

    def draw(self, *, batch_update: bool, offset: bool = False) -> str | None:
        """The fault for this request, or None (`offset`: an email events request carrying an offset)."""
        rates = self.spec.rates
        if not rates:
            return None
        with self._lock:
            roll = self._rng.random()
        edge = 0.0
        for kind in KINDS:
            if (kind == "partial" and not batch_update) or (kind == "offset" and not offset):
                continue
            edge += rates.get(kind, 0.0)
            if roll < edge:
                return kind
        return None

    def coin(self) -> bool:
        with self._lock:
            return self._rng.random() < 0.5

    def choose_failures(self, ids: Sequence[str]) -> tuple[set[str], str]:
        """A non-empty random subset of `ids` (about a third) and the retriable category they fail with."""
        with self._lock:
            failed = {i for i in ids if self._rng.random() < 1 / 3}
            if not failed:
                failed = {ids[self._rng.randrange(len(ids))]}
            return failed, PARTIAL_CATEGORIES[self._rng.randrange(len(PARTIAL_CATEGORIES))]
