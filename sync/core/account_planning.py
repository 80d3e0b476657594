"""The minimal writes for one scored company: only the account outputs that differ from what HubSpot holds.

As for contacts (planning.py), `scored_at` is written only together with a real change: our own writes bump
the company's hs_lastmodifieddate, and a write that changes nothing would make the next pass rescore it again.
"""

from __future__ import annotations

from collections.abc import Mapping

from sync.core.accounts import AccountProperties
from sync.core.model import AccountResult, PropertyUpdate
from sync.core.planning import same
from sync.core.scoring import breakdown_reasons


def account_values(result: AccountResult, props: AccountProperties) -> dict[str, str]:
    """The values leadsync's company properties should hold for this result (scored_at aside)."""
    return {
        props.score: str(result.score),
        props.fit: str(result.fit),
        props.engagement: str(result.engagement),
        props.grade: result.grade or "",
        props.reasons: breakdown_reasons(result.breakdown),
    }


def account_writes(result: AccountResult, props: AccountProperties, holding: Mapping[str, str]) -> dict[str, str]:
    """Diff-only, as for contacts: the values that differ from what the company holds (scored_at left out)."""
    return {name: value for name, value in account_values(result, props).items() if not same(holding.get(name), value)}


def plan_account(
    result: AccountResult, props: AccountProperties, current: Mapping[str, str], scored_at_ms: int
) -> PropertyUpdate | None:
    """The write that brings the company from `current` (what HubSpot holds) to `result`; None when it holds it.

    The update's `contact_id` is the company's id, as the CompanyWriter port takes it."""
    changed = account_writes(result, props, current)
    if not changed:
        return None
    changed[props.scored_at] = str(scored_at_ms)
    return PropertyUpdate(result.company_id, changed)
