"""A deterministic synthetic portal: the same seed always builds the same contacts and events.

Everything is drawn from one `random.Random(seed)` in a fixed order, and every time is
relative to `now_ms` (not the wall clock), so a seed names a portal exactly.

The planted signal (on by default): contacts who submitted a demo or contact-sales form
are far more likely to be opportunities or customers, and contacts with good fit answers
engage more, so a scoring model has something real to find in a backtest. A second signal,
which the example rules score only in part: energy managers, and contacts who downloaded the
procurement checklist, go on to become customers within the last year, so a learned likelihood
has something to find that the rules miss.

Every contact carries HubSpot's date-entered-stage properties (`hs_lifecyclestage_<stage>_date`)
for the stages it passed, in order, from its create date to its current stage. They and the
second signal are drawn from a generator of their own, so every other value stays as it was.
"""

from __future__ import annotations

import bisect
import itertools
import random
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sync.sandbox.company_generator import generate_companies
from sync.sandbox.portal import DEFAULT_PORTAL_ID, Portal
from sync.sandbox.properties import Option, PropertyDef, PropertyGroup
from sync.sandbox.records import EmailEventRecord, FormRecord, Submission
from sync.sandbox.wire import iso_ms


class Weighted:
    """A weighted table drawn with one random() and a bisect: random.choices is slow at this volume."""

    def __init__(self, *pairs: tuple[str, int]) -> None:
        self.names = [name for name, _ in pairs]
        total = sum(weight for _, weight in pairs)
        self.cumulative = [c / total for c in itertools.accumulate(weight for _, weight in pairs)]


DAY_MS = 86_400_000
DEFAULT_NOW_MS = 1_793_534_400_000  # 2026-11-01T12:00:00Z, the demo's "now"
EXCLUSION_LIST_ID = 42
NEWSLETTER_LIST_ID = 7
WEBINAR_LIST_ID = 9

FIRST_NAMES = (
    "Maria", "Andrei", "Ana", "Ioana", "Mihai", "Elena", "Alex", "Sofia", "Lukas", "Emma", "Jonas", "Lea",
    "Lucas", "Chloé", "Hugo", "Léa", "Marco", "Giulia", "Pablo", "Lucía", "Jan", "Eva", "Piotr", "Zofia",
    "Oliver", "Amelia", "Noah", "Olivia", "Liam", "Mia", "Erik", "Ingrid", "Mateo", "Sara", "Tomas", "Nina",
)  # fmt: skip
LAST_NAMES = (
    "Ionescu", "Pop", "Marin", "Popescu", "Dumitru", "Stan", "Müller", "Schmidt", "Fischer", "Weber", "Martin",
    "Bernard", "Dubois", "Rossi", "Russo", "Garcia", "Lopez", "Nowak", "Kowalski", "Smith", "Jones", "Brown",
    "Taylor", "Wilson", "Jensen", "Hansen", "Novak", "Horvat", "Silva", "Santos", "Janssen", "De Vries",
)  # fmt: skip
COMPANY_WORDS = (
    "volt", "grid", "fin", "solar", "wind", "hydro", "petro", "logi", "retail", "data", "cloud", "metro",
    "nova", "terra", "aero", "bio", "medi", "fabri", "build", "tele", "agri", "steel", "blue", "north",
)  # fmt: skip
COMPANY_SUFFIXES = ("works", "tech", "corp", "labs", "systems", "group", "co", "energy", "bank", "link")
TLDS = ("com", "eu", "de", "fr", "ro", "io", "net", "co.uk", "it", "es", "nl", "pl")
FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "gmx.de", "yahoo.fr", "proton.me", "icloud.com")
JOB_TITLES = Weighted(
    ("CEO", 3), ("CTO", 3), ("CFO", 2), ("Founder", 2), ("Owner", 2), ("VP Operations", 3),
    ("Head of Procurement", 4), ("Procurement Manager", 5), ("Energy Manager", 6), ("Operations Manager", 6),
    ("Marketing Manager", 5), ("Sales Ops", 3), ("Engineer", 8), ("Analyst", 6), ("Buyer", 4),
    ("Consultant", 4), ("Student", 2), ("Intern", 2), ("Project Manager", 5), ("IT Director", 3),
)  # fmt: skip
INDUSTRY_WEIGHTS = Weighted(
    ("ENERGY", 18), ("OIL_GAS", 8), ("FINANCE", 10), ("SOFTWARE", 12), ("MANUFACTURING", 12), ("RETAIL", 8),
    ("HEALTHCARE", 6), ("LOGISTICS", 8), ("EDUCATION", 4), ("GOVERNMENT", 3), ("TELECOM", 5), ("CONSTRUCTION", 6),
)  # fmt: skip
SOURCES = Weighted(
    ("ORGANIC_SEARCH", 30), ("PAID_SEARCH", 12), ("EMAIL_MARKETING", 8), ("SOCIAL_MEDIA", 8), ("REFERRALS", 10),
    ("OTHER_CAMPAIGNS", 4), ("DIRECT_TRAFFIC", 18), ("OFFLINE", 6), ("PAID_SOCIAL", 4),
)  # fmt: skip
REFERRERS = (
    "https://www.google.com/", "https://www.linkedin.com/", "https://ecosystem.hubspot.com/marketplace/apps",
    "https://www.bing.com/", "https://news.ycombinator.com/", "https://www.g2.com/", "https://duckduckgo.com/",
)  # fmt: skip
STAGES = Weighted(
    ("subscriber", 10), ("lead", 55), ("marketingqualifiedlead", 14), ("salesqualifiedlead", 8),
    ("opportunity", 5), ("customer", 6), ("evangelist", 1), ("other", 1),
)  # fmt: skip
# (form name, relative popularity, page path)
FORMS = (
    ("Demo request", 6, "/demo"), ("Book a demo - pricing page", 3, "/pricing"), ("Contact sales", 4, "/contact"),
    ("Webinar: grid analytics", 6, "/webinars/grid-analytics"), ("Webinar: Q3 product update", 4, "/webinars/q3"),
    ("Energy ebook", 10, "/resources/energy-ebook"), ("Procurement checklist", 8, "/resources/checklist"),
    ("Newsletter signup", 14, "/blog"), ("Pricing question", 3, "/pricing"), ("Event registration", 4, "/events"),
    ("Partner application", 1, "/partners"), ("Careers: open application", 1, "/careers"),
)  # fmt: skip

# Forms of the other types (name, formType, archived, page path, fields): a pop-up demo request (the planted
# signal reaches it too), a pop-up ebook offer, a non-HubSpot contact form whose email field has another
# name and whose submissions often come without conversionId, blog comments, and an archived form.
OTHER_FORMS = (
    ("Pop-up: book a demo", "flow", False, "/pricing", ("email", "firstname")),
    ("Pop-up: energy ebook", "flow", False, "/blog", ("email",)),
    ("Website contact form", "captured", False, "/contact-us", ("work_email", "full_name")),
    ("Blog comments", "blog_comment", False, "/blog", ("email", "comment")),
    ("Webinar: 2023 kickoff", "hubspot", True, "/webinars/2023-kickoff", ("email", "firstname", "lastname")),
)  # fmt: skip
WON_STAGES = ("opportunity", "customer")
# The stages in HubSpot's order, and the date-entered-stage property of each; `other` stands outside the order.
STAGE_PATH = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer", "evangelist",
)  # fmt: skip
STAGE_DATE_PROPERTIES = {stage: f"hs_lifecyclestage_{stage}_date" for stage in (*STAGE_PATH, "other")}
# The second planted signal: who goes on to become a customer, and how likely (see `_conversions`).
PLANTED_TITLE = "Energy Manager"
PLANTED_FORM = "Procurement checklist"
PLANTED_TITLE_CHANCE = 0.5
PLANTED_FORM_CHANCE = 0.8

QUALIFICATION = (
    ("decision_role", "Decision role", (("owner", "Owns the decision"), ("limited", "Influences"), ("none", "None"))),
    ("need_level", "Need level", (("core", "Core need"), ("nice", "Nice to have"), ("none", "No need"))),
    ("purchase_timeline", "Purchase timeline", (("days", "Days"), ("months", "Months"), ("none", "No plan"))),
    ("budget_fit", "Budget fit", (("fits", "Fits"), ("moderate", "Moderate"), ("short", "Short"))),
    ("ls_sales_feedback", "Sales feedback", (("qualified", "Qualified"), ("unqualified", "Unqualified"),
                                              ("bad_timing", "Bad timing"))),
)  # fmt: skip


@dataclass
class _Person:
    cid: int
    email: str
    first: str
    last: str
    created: int
    fit: float
    optout: bool


def generate_portal(
    contacts: int,
    seed: int,
    *,
    shared_timestamp: int = 0,
    now_ms: int = DEFAULT_NOW_MS,
    portal_id: int = DEFAULT_PORTAL_ID,
    planted_signal: bool = True,
    submission_rate: float = 0.25,
    email_sends_per_contact: float = 1.0,
    companies: int = 0,
) -> Portal:
    """A portal of `contacts` synthetic contacts with forms, submissions, email events and lists, and
    `companies` companies associated with them (company_generator.py; none by default).

    `shared_timestamp=N` gives N contacts one lastmodifieddate, as a bulk import does; a search
    window on lastmodifieddate then holds more than the 10,000 results one query can page.
    """
    if shared_timestamp > contacts:
        raise ValueError(f"shared_timestamp={shared_timestamp} is more than the {contacts} contacts")
    rng = random.Random(seed)
    portal = Portal(portal_id, created_ms=now_ms - 5 * 365 * DAY_MS)
    _define_properties(portal)

    forms = [FormRecord(_uuid(rng), name, now_ms - 900 * DAY_MS + i * DAY_MS) for i, (name, _, _) in enumerate(FORMS)]
    for form in forms:
        portal.add_form(form)

    people = _people(rng, contacts, now_ms)
    shared_ms = now_ms - 30 * DAY_MS
    shared = set(rng.sample(range(contacts), shared_timestamp)) if shared_timestamp else set()
    submissions: list[Submission] = []
    rows: list[tuple[int, dict[str, str], int, int]] = []
    demo_forms = {f.id for f in forms if "demo" in f.name.lower() or "contact sales" in f.name.lower()}
    webinar_forms = {f.id for f in forms if "webinar" in f.name.lower()}
    webinar_members: dict[int, int] = {}
    form_weights = [w for _, w, _ in FORMS]
    subs_by_person: list[list[Submission]] = []
    for index, person in enumerate(people):
        props = _properties(rng, person)
        subs = _submissions(rng, person, forms, form_weights, now_ms, submission_rate)
        submissions.extend(subs)
        subs_by_person.append(subs)
        props["lifecyclestage"] = _stage(rng, person, planted_signal and any(s.form_id in demo_forms for s in subs))
        for sub in subs:
            if sub.form_id in webinar_forms:
                webinar_members.setdefault(person.cid, sub.submitted_at)
        if index in shared:
            modified = shared_ms
            if person.created > shared_ms:
                person.created = shared_ms - rng.randrange(1, 365 * DAY_MS)
        else:
            modified = person.created + rng.randrange(0, now_ms - person.created + 1)
        rows.append((person.cid, props, person.created, modified))

    events = _email_events(rng, people, portal_id, now_ms, email_sends_per_contact)
    # Forms of the other types, drawn from a second generator so that every value above stays as it was.
    extra_rng = random.Random(seed * 1_000_003 + 17)
    extra_forms = [
        FormRecord(_uuid(extra_rng), name, now_ms - 400 * DAY_MS + i * DAY_MS, fields, kind, archived)
        for i, (name, kind, archived, _, fields) in enumerate(OTHER_FORMS)
    ]
    for form in extra_forms:
        portal.add_form(form)
    stages = [row[1]["lifecyclestage"] for row in rows]
    submissions.extend(
        _other_submissions(extra_rng, people, stages, extra_forms, now_ms, submission_rate, planted_signal)
    )
    # From a generator of its own, so that every value above stays as it was.
    stage_rng = random.Random(seed * 1_000_003 + 29)
    _stages_reached(stage_rng, people, rows, subs_by_person, forms, now_ms, planted_signal)
    portal.bulk_load(rows, submissions, events)

    exclusion = {p.cid: p.created + DAY_MS for p in people if rng.random() < 0.005}
    newsletter = {p.cid: p.created for p in people if not p.optout and rng.random() < 0.2}
    portal.set_list(EXCLUSION_LIST_ID, "Exclusion: competitors, partners and staff", exclusion)
    portal.set_list(NEWSLETTER_LIST_ID, "Newsletter subscribers", newsletter)
    portal.set_list(WEBINAR_LIST_ID, "Webinar attendees", webinar_members)
    portal.bulk_load_companies(*generate_companies(seed, companies, rows, now_ms))
    return portal


def _define_properties(portal: Portal) -> None:
    """The portal's own qualification properties, and HubSpot's date-entered-stage ones."""
    portal.define_group(PropertyGroup("lead_qualification", "Lead qualification", 10))
    for name, label, options in QUALIFICATION:
        opts = tuple(Option(text, value, i) for i, (value, text) in enumerate(options))
        portal.define_property(PropertyDef(name, label, "enumeration", "select", "lead_qualification", opts))
    for stage, name in STAGE_DATE_PROPERTIES.items():
        label = f"Became a {stage} date"
        portal.define_property(
            PropertyDef(name, label, "datetime", "date", "contactinformation", read_only=True, hubspot_defined=True)
        )


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


def _pick(rng: random.Random, table: Weighted) -> str:
    return table.names[bisect.bisect_right(table.cumulative, rng.random())]


def _people(rng: random.Random, count: int, now_ms: int) -> list[_Person]:
    people: list[_Person] = []
    used: dict[str, int] = {}
    companies = [
        f"{rng.choice(COMPANY_WORDS)}{rng.choice(COMPANY_SUFFIXES)}.{rng.choice(TLDS)}"
        for _ in range(max(50, count // 8))
    ]
    cid = 1000
    for _ in range(count):
        cid += rng.randint(1, 3)  # HubSpot ids leave gaps
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        domain = rng.choice(FREE_MAIL) if rng.random() < 0.3 else rng.choice(companies)
        local = f"{_ascii(first)}.{_ascii(last)}"
        n = used.get(f"{local}@{domain}", 0)
        used[f"{local}@{domain}"] = n + 1
        email = f"{local}{n if n else ''}@{domain}"
        created = now_ms - rng.randrange(DAY_MS, 3 * 365 * DAY_MS)
        people.append(_Person(cid, email, first, last, created, rng.random(), rng.random() < 0.03))
    return people


def _ascii(name: str) -> str:
    """'Lucía De Vries' -> 'luciadevries': email local parts stay plain ASCII."""
    decomposed = unicodedata.normalize("NFKD", name.lower().replace("ł", "l"))
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum())


def _properties(rng: random.Random, person: _Person) -> dict[str, str]:
    fit = person.fit  # a hidden quality that tilts the answers: good fits answer well
    props = {"email": person.email, "firstname": person.first, "lastname": person.last}
    props["jobtitle"] = _pick(rng, JOB_TITLES)
    if rng.random() < 0.85:
        props["industry"] = _pick(rng, INDUSTRY_WEIGHTS)
    if rng.random() < 0.8:
        props["numberofemployees"] = str(max(1, int(rng.lognormvariate(4.0 + fit, 1.3))))
    for name, _, options in QUALIFICATION[:4]:
        if rng.random() < 0.6:
            good, mid, bad = (value for value, _ in options)
            roll = rng.random() * 0.7 + fit * 0.3
            props[name] = good if roll > 0.6 else mid if roll > 0.3 else bad
    if rng.random() < 0.04:
        props["ls_sales_feedback"] = "unqualified" if fit < 0.5 else rng.choice(("qualified", "bad_timing"))
    props["hs_analytics_source"] = _pick(rng, SOURCES)
    if rng.random() < 0.7:
        props["hs_analytics_first_referrer"] = rng.choice(REFERRERS)
    props["hs_analytics_num_visits"] = str(int(rng.expovariate(1 / (2 + 8 * fit))))
    props["hs_email_optout"] = "true" if person.optout else "false"
    if rng.random() < 0.5:
        props["hubspotscore"] = str(rng.randint(0, 100))
    return props


def _submissions(
    rng: random.Random,
    person: _Person,
    forms: list[FormRecord],
    weights: list[int],
    now_ms: int,
    rate: float,
) -> list[Submission]:
    if rng.random() >= rate * (0.5 + person.fit):
        return []
    out = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        index = rng.choices(range(len(forms)), weights)[0]
        form = forms[index]
        at = person.created + rng.randrange(0, now_ms - person.created + 1)
        values = [("email", person.email), ("firstname", person.first), ("lastname", person.last)]
        query = "?utm_source=newsletter" if rng.random() < 0.2 else ""
        page = f"https://www.acme-eu.example{FORMS[index][2]}{query}"
        out.append(Submission(form.id, _uuid(rng), at, values, page))
    return out


def _other_submissions(
    rng: random.Random,
    people: list[_Person],
    stages: list[str],
    forms: list[FormRecord],
    now_ms: int,
    rate: float,
    planted_signal: bool,
) -> list[Submission]:
    """Submissions of OTHER_FORMS. With the planted signal, contacts who became opportunities or customers
    are far likelier to have asked for a demo in the pop-up, as with the other demo forms."""
    popup_demo, popup_ebook, captured, comments, archived = forms
    out: list[Submission] = []
    for person, stage in zip(people, stages, strict=True):
        won = stage in WON_STAGES
        demo_chance = (0.4 if won else 0.02) if planted_signal else 0.05
        chances = (
            (popup_demo, rate * demo_chance),
            (popup_ebook, rate * 0.2),
            (captured, rate * 0.2),
            (comments, rate * 0.08),
            (archived, rate * 0.1),
        )
        for form, chance in chances:
            if rng.random() >= chance:
                continue
            at = person.created + rng.randrange(0, now_ms - person.created + 1)
            path = next(p for name, _, _, p, _ in OTHER_FORMS if name == form.name)
            page = f"https://www.acme-eu.example{path}"
            if form is captured:
                # A non-HubSpot form: the contact's email arrives under the page's own field name.
                values: list[tuple[str, str] | tuple[str, str, str]] = [
                    ("work_email", person.email, "0-1"),
                    ("full_name", f"{person.first} {person.last}", "0-1"),
                ]
                sends = rng.random() < 0.3
            else:
                values = [("email", person.email, "0-1"), ("firstname", person.first, "0-1")]
                sends = form is not popup_ebook or rng.random() < 0.5
            out.append(Submission(form.id, _uuid(rng), at, values, page, sends_conversion_id=sends))
    return out


def _stages_reached(
    rng: random.Random,
    people: list[_Person],
    rows: list[tuple[int, dict[str, str], int, int]],
    subs_by_person: list[list[Submission]],
    forms: list[FormRecord],
    now_ms: int,
    planted_signal: bool,
) -> None:
    """The second planted signal's customers, and every contact's date-entered-stage properties."""
    planted_form = next(f.id for f in forms if f.name == PLANTED_FORM)
    for person, (_, props, _, _), subs in zip(people, rows, subs_by_person, strict=True):
        asked = min((s.submitted_at for s in subs if s.form_id == planted_form), default=None)
        converted = _conversion(rng, person, props, asked, now_ms) if planted_signal else None
        if converted is not None:
            props["lifecyclestage"] = "customer"
        props.update(_stage_dates(rng, person.created, props["lifecyclestage"], now_ms, converted))


def _conversion(
    rng: random.Random, person: _Person, props: Mapping[str, str], asked: int | None, now_ms: int
) -> int | None:
    """When a contact not yet won becomes a customer through the second planted signal (None: it does not).

    A contact who downloaded the procurement checklist (PLANTED_FORM_CHANCE) or an energy manager
    (PLANTED_TITLE_CHANCE) becomes a customer at a time drawn within the last year, and at least two weeks
    after the download or its create date: what a new offer for energy buyers did to the portal's sales."""
    if props["lifecyclestage"] not in STAGE_PATH[:4]:
        return None
    title_roll, form_roll, when = rng.random(), rng.random(), rng.random()
    if asked is not None and form_roll < PLANTED_FORM_CHANCE:
        anchor = asked
    elif props.get("jobtitle") == PLANTED_TITLE and title_roll < PLANTED_TITLE_CHANCE:
        anchor = person.created
    else:
        return None
    start = max(anchor + 14 * DAY_MS, now_ms - 365 * DAY_MS)
    return start + int(when * (now_ms - start)) if start <= now_ms else None


def _stage_dates(
    rng: random.Random, created: int, stage: str, now_ms: int, reached: int | None = None
) -> dict[str, str]:
    """HubSpot's date-entered-stage values: the first stage on the create date, the current one at `reached`
    (drawn when None), the stages between at sorted dates in between. `other` has only its own date."""
    end = reached if reached is not None else created + rng.randrange(0, now_ms - created + 1)
    if stage == "other":
        return {STAGE_DATE_PROPERTIES["other"]: iso_ms(end)}
    if stage not in STAGE_PATH:
        return {}
    first = 0 if stage == "subscriber" else 1  # a contact starts as a lead unless it is still a subscriber
    path = STAGE_PATH[first : STAGE_PATH.index(stage) + 1]
    if len(path) == 1:
        return {STAGE_DATE_PROPERTIES[stage]: iso_ms(created)}
    between = sorted(created + rng.randrange(0, end - created + 1) for _ in path[1:-1])
    return {STAGE_DATE_PROPERTIES[s]: iso_ms(t) for s, t in zip(path, [created, *between, end], strict=True)}


def _stage(rng: random.Random, person: _Person, demo: bool) -> str:
    if demo and rng.random() < 0.6:
        return "customer" if rng.random() < 0.5 else "opportunity"
    return _pick(rng, STAGES)


# HubSpot's bounce categories, roughly as often as a B2B list sees them; UNKNOWN_USER and
# MAILBOX_MISCONFIGURATION are the hard ones (README "What counts").
BOUNCE_CATEGORIES = Weighted(
    ("UNKNOWN_USER", 35), ("MAILBOX_FULL", 14), ("MAILBOX_MISCONFIGURATION", 5), ("DNS_FAILURE", 5),
    ("THROTTLED", 8), ("TIMEOUT", 5), ("CONTENT", 5), ("SPAM", 5), ("POLICY", 7), ("GREYLISTING", 3),
    ("UNCATEGORIZED", 6), ("TEMPORARY_PROBLEM", 2),
)  # fmt: skip
SUBSCRIPTION_TYPES = (1, 2, 3)  # newsletter, product updates, events


def _email_events(
    rng: random.Random, people: list[_Person], portal_id: int, now_ms: int, sends_per_contact: float
) -> list[EmailEventRecord]:
    # The draws happen in one fixed order (campaigns, then person by person, send by send): a seed names a
    # portal, and the tests and benchmark figures depend on that order. The helpers below keep it.
    campaigns = sorted((now_ms - rng.randrange(DAY_MS, 365 * DAY_MS), 5001 + i) for i in range(24))
    events: list[EmailEventRecord] = []
    add = _recorder(rng, portal_id, now_ms, events)
    for person in people:
        eligible = [c for c in campaigns if c[0] > person.created]
        if not eligible:
            continue
        sends = int(sends_per_contact) + (1 if rng.random() < sends_per_contact % 1 else 0)
        _person_emails(rng, add, person, sorted(rng.sample(eligible, min(sends, len(eligible)))))
    return events


_AddEvent = Callable[..., str]


def _recorder(rng: random.Random, portal_id: int, now_ms: int, events: list[EmailEventRecord]) -> _AddEvent:
    """`add(at, kind, person, campaign, filtered=False, extra=None, event_id=None) -> id`, appending to `events`.

    An event later than `now` is not kept, but its id is still drawn.
    """

    def add(
        at: int,
        kind: str,
        person: _Person,
        campaign: int,
        filtered: bool = False,
        extra: Mapping[str, object] | None = None,
        event_id: str | None = None,
    ) -> str:
        eid = event_id or _uuid(rng)
        if at <= now_ms:
            events.append(EmailEventRecord(eid, at, kind, person.email, campaign, portal_id, filtered, extra))
        return eid

    return add


def _person_emails(rng: random.Random, add: _AddEvent, person: _Person, sends: list[tuple[int, int]]) -> None:
    """One contact's sends, in time order, until they unsubscribe; then how their subscription ended."""
    unsubscribed = False
    last = (0, 0)
    for sent_at, campaign in sends:
        if unsubscribed:
            break
        at = sent_at + rng.randrange(0, 3_600_000)
        last = (at, campaign)
        unsubscribed = _one_send(rng, add, person, campaign, at)
    if person.optout and not unsubscribed and last[0]:
        # Opted out without a delivered email (bounced, dropped): the unsubscribe came another way.
        change = _status_change(rng, "SOURCE_HUBSPOT_CUSTOMER", everything=True)
        add(last[0] + 2 * DAY_MS, "STATUSCHANGE", person, last[1], extra=change)
    elif not person.optout and last[0] and rng.random() < 0.004:
        # An operator's import or migration unsubscribes in bulk: not the contact's act.
        source = rng.choice(("SOURCE_IMPORT", "SOURCE_MIGRATION"))
        add(last[0] + 3 * DAY_MS, "STATUSCHANGE", person, last[1], extra=_status_change(rng, source, True))


def _one_send(rng: random.Random, add: _AddEvent, person: _Person, campaign: int, at: int) -> bool:
    """One email sent at `at` and what became of it; True when the recipient unsubscribed."""
    add(at, "SENT", person, campaign)
    if rng.random() < 0.3:
        add(at + 500, "PROCESSED", person, campaign)
    roll = rng.random()
    if roll < 0.008:
        add(at + 1_000, "DROPPED", person, campaign, extra=_dropped(rng))
        return False
    if roll < 0.03:
        _bounce(rng, add, at, person, campaign)
        return False
    if roll < 0.045:
        add(at + 60_000, "DEFERRED", person, campaign, extra={"attempt": 1})
    delivered = at + rng.randrange(2_000, 120_000)
    add(delivered, "DELIVERED", person, campaign)
    if rng.random() < 0.015:
        # Security scanners open and click within seconds of delivery: HubSpot flags them.
        add(delivered + rng.randrange(500, 5_000), "OPEN", person, campaign, True)
        if rng.random() < 0.6:
            add(delivered + rng.randrange(5_000, 9_000), "CLICK", person, campaign, True, {"url": _url(rng)})
    if rng.random() < 0.15 + 0.35 * person.fit:
        _opened(rng, add, person, campaign, delivered + rng.randrange(60_000, 5 * DAY_MS))
    return _unsubscribed(rng, add, person, campaign, delivered)


def _opened(rng: random.Random, add: _AddEvent, person: _Person, campaign: int, opened: int) -> None:
    """A human open at `opened`, and what the reader did next."""
    open_id = add(opened, "OPEN", person, campaign)
    if rng.random() < 0.05:
        # HubSpot's event ids are unique only with their created time: the same id, later.
        add(opened + rng.randrange(1_000, DAY_MS), "OPEN", person, campaign, event_id=open_id)
    if rng.random() < 0.3:
        add(opened + rng.randrange(5_000, 600_000), "CLICK", person, campaign, extra={"url": _url(rng)})
    if rng.random() < 0.01:
        add(opened + 30_000, "FORWARD", person, campaign)
    if rng.random() < 0.005:
        add(opened + 40_000, "PRINT", person, campaign)


def _unsubscribed(rng: random.Random, add: _AddEvent, person: _Person, campaign: int, delivered: int) -> bool:
    """Whether a delivered email ends the recipient's subscription (a spam report, an unsubscribe), recorded."""
    if rng.random() < 0.002:
        add(delivered + DAY_MS, "SPAMREPORT", person, campaign)
        # HubSpot unsubscribes a recipient who reports spam: the spam report is what scores.
        change = _status_change(rng, "SOURCE_SPAM_REPORT", everything=True)
        add(delivered + DAY_MS + 1_000, "STATUSCHANGE", person, campaign, extra=change)
        return True
    if person.optout or rng.random() < 0.006:
        source = rng.choice(("SOURCE_RECIPIENT", "SOURCE_RECIPIENT", "SOURCE_LIST_UNSUBSCRIBE"))
        # From everything (opted out) or from one subscription type; a few come back later.
        change = _status_change(rng, source, everything=person.optout or rng.random() < 0.4)
        add(delivered + 2 * DAY_MS, "STATUSCHANGE", person, campaign, extra=change)
        if not person.optout and rng.random() < 0.25:
            add(delivered + 30 * DAY_MS, "STATUSCHANGE", person, campaign, extra=_resubscribe())
        return True
    return False


def _bounce(rng: random.Random, add: Callable[..., str], at: int, person: _Person, campaign: int) -> None:
    """A bounce with HubSpot's category; some are later obsoleted or lifted by an operator's UNBOUNCE."""
    category = _pick(rng, BOUNCE_CATEGORIES)
    extra: dict[str, object] = {"category": category, "status": "550" if category == "UNKNOWN_USER" else "421"}
    roll = rng.random()
    if roll < 0.12:
        # A retry got through: the later DELIVERED obsoletes the bounce (HubSpot's obsoletedBy).
        retried = at + rng.randrange(3_600_000, 2 * DAY_MS)
        delivered_id = add(retried, "DELIVERED", person, campaign)
        extra["obsoletedBy"] = {"id": delivered_id, "created": retried}
    bounce_id = add(at + 2_000, "BOUNCE", person, campaign, extra=extra)
    if category in ("UNKNOWN_USER", "MAILBOX_MISCONFIGURATION"):
        if rng.random() < 0.6:
            # HubSpot marks a hard-bounced recipient as bounced: a status change that is not an unsubscribe.
            change = _status_change(rng, "SOURCE_NON_DELIVERY_REPORT", everything=True)
            change["causedByEvent"] = {"id": bounce_id, "created": at + 2_000}
            add(at + 3_000, "STATUSCHANGE", person, campaign, extra=change)
        if rng.random() < 0.2:
            add(at + 20 * DAY_MS, "UNBOUNCE", person, campaign, extra={"user": "ops@acme-eu.example"})


def _dropped(rng: random.Random) -> dict[str, object]:
    reason = rng.choice(("PREVIOUSLY_BOUNCED", "PREVIOUSLY_UNSUBSCRIBED_PORTAL", "PREVIOUS_SPAM", "BLOCKED_ADDRESS"))
    return {"dropReason": reason, "dropMessage": reason.replace("_", " ").lower()}


def _status_change(rng: random.Random, source: str, everything: bool) -> dict[str, object]:
    """A STATUSCHANGE as HubSpot sends it. Unsubscribed from everything, the subscriptions array may still list
    types as SUBSCRIBED, or be empty; unsubscribed from one type, the portal status stays SUBSCRIBED."""
    if everything:
        shape = rng.random()
        if shape < 0.3:
            subscriptions: list[dict[str, object]] = []
        else:
            subscriptions = [
                {"id": sid, "status": "UNSUBSCRIBED" if shape < 0.6 or sid == 1 else "SUBSCRIBED", "legalBasis": None}
                for sid in SUBSCRIPTION_TYPES
            ]
        status = "UNSUBSCRIBED"
    else:
        subscriptions = [{"id": rng.choice(SUBSCRIPTION_TYPES), "status": "UNSUBSCRIBED", "legalBasis": None}]
        status = "SUBSCRIBED"
    return {"subscriptions": subscriptions, "portalSubscriptionStatus": status, "source": source}


def _resubscribe() -> dict[str, object]:
    return {
        "subscriptions": [{"id": sid, "status": "SUBSCRIBED", "legalBasis": None} for sid in SUBSCRIPTION_TYPES],
        "portalSubscriptionStatus": "SUBSCRIBED",
        "source": "SOURCE_RECIPIENT",
    }


def _url(rng: random.Random) -> str:
    return rng.choice(
        (
            "https://www.acme-eu.example/pricing",
            "https://www.acme-eu.example/demo",
            "https://www.acme-eu.example/blog/grid-analytics",
            "https://www.acme-eu.example/resources/energy-ebook",
        )
    )
