"""Synthetic companies for a generated portal, with a planted account signal.

Drawn from a random stream of their own, seeded from the portal's seed, after every contact and event
is made: a portal generated with companies has exactly the contacts and events of one without.

The planted signal: contacts who converted (opportunity, customer) sit far more often in high-fit
companies (ENERGY or FINANCE with 1,000 employees or more), so an account fit rule predicts conversion.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from sync.sandbox.index import Row

DAY_MS = 86_400_000
FIRST_COMPANY_ID = 9_000_000_000  # HubSpot's company ids are large and leave gaps
HIGH_FIT_INDUSTRIES = ("ENERGY", "FINANCE")
OTHER_INDUSTRIES = ("SOFTWARE", "MANUFACTURING", "RETAIL", "HEALTHCARE", "LOGISTICS", "TELECOM", "CONSTRUCTION")
COUNTRIES = ("RO", "DE", "FR", "IT", "ES", "NL", "PL", "GB", "SE", "AT")
NAME_WORDS = ("Volt", "Grid", "Fin", "Solar", "Nord", "Terra", "Metro", "Blue", "Aero", "Hydro", "Data", "Steel")
NAME_SUFFIXES = ("Energy", "Bank", "Systems", "Group", "Works", "Capital", "Logistics", "Labs")
WON_STAGES = frozenset({"opportunity", "customer"})
HIGH_FIT_SHARE = 0.25  # of companies
ASSOCIATED = 0.85  # of contacts: the rest have no company
EXTRA_COMPANIES = 0.12  # of associated contacts: 1 or 2 more, unlabeled
NO_PRIMARY = 0.03  # of associated contacts: no Primary label at all (the lowest id stands in)
WON_IN_HIGH_FIT = 0.7  # chance a converted contact's primary company is a high-fit one
OTHERS_IN_HIGH_FIT = 0.15


def company_seed(seed: int) -> str:
    """The companies' own stream: a string seed is hashed, so it never collides with the portal's int seed."""
    return f"companies:{seed}"


def generate_companies(
    seed: int, count: int, contacts: Sequence[Row], now_ms: int
) -> tuple[list[Row], list[tuple[int, int, bool]]]:
    """`count` company rows and the (contact id, company id, primary) associations of `contacts`."""
    rng = random.Random(company_seed(seed))
    rows: list[Row] = []
    high_fit: list[int] = []
    other: list[int] = []
    cid = FIRST_COMPANY_ID
    for n in range(count):
        cid += rng.randint(1, 5)
        fit = rng.random() < HIGH_FIT_SHARE
        rows.append((cid, _firmographics(rng, n, fit), *_dates(rng, now_ms)))
        (high_fit if fit else other).append(cid)
    associations: list[tuple[int, int, bool]] = []
    if not rows:
        return rows, associations
    everyone = high_fit + other
    for contact_id, props, _, _ in contacts:
        if rng.random() >= ASSOCIATED:
            continue
        won = props.get("lifecyclestage") in WON_STAGES
        leaning = WON_IN_HIGH_FIT if won else OTHERS_IN_HIGH_FIT
        pool = high_fit if (high_fit and rng.random() < leaning) or not other else other
        first = rng.choice(pool)
        chosen = [first]
        if rng.random() < EXTRA_COMPANIES:
            extra = rng.sample(everyone, min(len(everyone), rng.randint(1, 2) + 1))
            chosen += [c for c in extra if c != first][:2]
        labelled = rng.random() >= NO_PRIMARY
        associations += [(contact_id, company, labelled and company == first) for company in chosen]
    return rows, associations


def _firmographics(rng: random.Random, n: int, high_fit: bool) -> dict[str, str]:
    name = f"{rng.choice(NAME_WORDS)}{rng.choice(NAME_SUFFIXES).lower()} {n}"
    props = {
        "name": name,
        "domain": f"{name.replace(' ', '-').lower()}.example",
        "country": rng.choice(COUNTRIES),
        "lifecyclestage": rng.choice(("lead", "lead", "opportunity", "customer")),
    }
    if high_fit:
        props["industry"] = rng.choice(HIGH_FIT_INDUSTRIES)
        employees = rng.randint(1_000, 20_000)
    else:
        # Some are in the right industry but too small, some big in another one: fit needs both.
        props["industry"] = rng.choice((*OTHER_INDUSTRIES, *HIGH_FIT_INDUSTRIES))
        employees = rng.randint(5, 999) if props["industry"] in HIGH_FIT_INDUSTRIES else rng.randint(5, 5_000)
    if rng.random() < 0.9:  # some companies never gave a head count
        props["numberofemployees"] = str(employees)
    if rng.random() < 0.8:
        props["annualrevenue"] = str(employees * rng.randint(80_000, 250_000))
    return props


def _dates(rng: random.Random, now_ms: int) -> tuple[int, int]:
    created = now_ms - rng.randrange(30 * DAY_MS, 4 * 365 * DAY_MS)
    return created, created + rng.randrange(0, now_ms - created + 1)
