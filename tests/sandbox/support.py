"""What the sandbox tests share: a hand-made portal with known values and a small client."""

from __future__ import annotations

from typing import Any

import requests

from sync.sandbox import Portal, Sandbox
from sync.sandbox.properties import Option, PropertyDef, PropertyGroup
from sync.sandbox.records import EmailEventRecord, FormRecord, Submission

T0 = 1_790_000_000_000  # 2026-09-21T14:13:20Z
DAY = 86_400_000
TOKEN = "sandbox-token"
MARIA = "maria.ionescu@voltgrid.ro"

# (id, properties, createdate, lastmodifieddate): every search operator test reads these.
CONTACTS: list[tuple[int, dict[str, str], int, int]] = [
    (101, {"email": "maria.ionescu@voltgrid.ro", "firstname": "Maria", "numberofemployees": "800",
           "industry": "ENERGY", "lifecyclestage": "lead", "jobtitle": "CEO"}, T0, T0 + 5 * DAY),
    (102, {"email": "andrei.pop@finbank.eu", "firstname": "Andrei", "numberofemployees": "250",
           "industry": "FINANCE", "lifecyclestage": "marketingqualifiedlead", "jobtitle": "Marketing Manager"},
     T0 + DAY, T0 + 5 * DAY),
    (103, {"email": "spy@rival.com", "industry": "ENERGY", "lifecyclestage": "lead", "jobtitle": "Analyst"},
     T0 + 2 * DAY, T0 + 3 * DAY),
    (104, {"email": "ops@acme.com", "numberofemployees": "90", "lifecyclestage": "customer", "jobtitle": "Sales Ops"},
     T0 + 3 * DAY, T0 + 6 * DAY),
    (105, {"email": "Student.Sam@Gmail.com", "numberofemployees": "5", "lifecyclestage": "subscriber",
           "jobtitle": "Student intern", "hs_email_optout": "true"}, T0 + 4 * DAY, T0 + 5 * DAY),
    (107, {"email": "quiet@logistics.de", "numberofemployees": "1200", "industry": "LOGISTICS",
           "decision_role": "owner"}, T0 + 5 * DAY, T0 + 7 * DAY),
]  # fmt: skip
FORM_DEMO, FORM_EBOOK, FORM_EMPTY = "f-demo", "f-ebook", "f-empty"


def build_portal() -> Portal:
    """Six contacts, three forms with submissions, a few email events and one exclusion list."""
    portal = Portal(12345678, created_ms=T0)
    portal.define_group(PropertyGroup("lead_qualification", "Lead qualification"))
    options = (Option("Owner", "owner"), Option("Limited", "limited"), Option("None", "none"))
    portal.define_property(PropertyDef("decision_role", "Decision role", "enumeration", "select", "lead_qualification",
                                       options))  # fmt: skip
    portal.define_property(PropertyDef("ls_score", "Score", "number", "number", "lead_qualification"))
    portal.define_property(PropertyDef("ls_grade", "Grade", "string", "text", "lead_qualification"))
    for form_id, name in ((FORM_DEMO, "Demo request"), (FORM_EBOOK, "Energy ebook"), (FORM_EMPTY, "Careers")):
        portal.add_form(FormRecord(form_id, name, T0))
    submissions = [
        Submission(FORM_DEMO if i % 2 else FORM_EBOOK, f"cv-{i}", T0 + i * 1000, [("email", MARIA)],
                   "https://acme.example/pricing")
        for i in range(1, 8)
    ]  # fmt: skip
    events = [
        EmailEventRecord("e-1", T0 + 1000, "SENT", "maria.ionescu@voltgrid.ro", 501, 12345678),
        EmailEventRecord("e-2", T0 + 2000, "DELIVERED", "maria.ionescu@voltgrid.ro", 501, 12345678),
        EmailEventRecord("e-3b", T0 + 3000, "OPEN", "maria.ionescu@voltgrid.ro", 501, 12345678, True),
        EmailEventRecord("e-3a", T0 + 3000, "OPEN", "andrei.pop@finbank.eu", 501, 12345678),
        EmailEventRecord("e-4", T0 + 4000, "CLICK", "maria.ionescu@voltgrid.ro", 501, 12345678, False,
                         {"url": "https://acme.example/pricing"}),
        EmailEventRecord("e-5", T0 + 5000, "BOUNCE", "spy@rival.com", 501, 12345678, False,
                         {"category": "HARD_BOUNCE"}),
        EmailEventRecord("e-6", T0 + 6000, "STATUSCHANGE", "ops@acme.com", 501, 12345678, False,
                         {"subscriptions": [{"id": 1, "status": "UNSUBSCRIBED"}], "source": "SOURCE_RECIPIENT"}),
    ]  # fmt: skip
    portal.bulk_load([(cid, dict(props), c, m) for cid, props, c, m in CONTACTS], submissions, events)
    portal.set_list(42, "Exclusion list", {103: T0, 104: T0 + DAY, 107: T0 + 2 * DAY})
    return portal


class Api:
    """requests against one sandbox, with its token unless told otherwise."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.url = sandbox.url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {sandbox.token}"

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.url + path, params=params, timeout=10)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(self.url + path, json=body, timeout=10)

    def admin(self, path: str, body: Any = None) -> requests.Response:
        """Admin endpoints, without the token: they need none."""
        if body is None:
            return requests.get(f"{self.url}/__sandbox/{path}", timeout=10)
        return requests.post(f"{self.url}/__sandbox/{path}", json=body, timeout=10)

    def search(self, filters: list[dict[str, Any]] | None = None, **body: Any) -> requests.Response:
        payload = {"filterGroups": [{"filters": filters}] if filters else [], **body}
        return self.post("/crm/v3/objects/contacts/search", payload)

    def update(self, inputs: list[dict[str, Any]]) -> requests.Response:
        return self.post("/crm/v3/objects/contacts/batch/update", {"inputs": inputs})

    def props(self, cid: str) -> dict[str, str]:
        props = self.sandbox.portal.contact_properties(cid)
        assert props is not None
        return props

    def close(self) -> None:
        self.session.close()
