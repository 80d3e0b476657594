"""The adapter's forms and submissions against the sandbox, over loopback with the real SDK and requests:
forms of every type the config names (default: all but blog comments), archived ones skipped, every page;
submissions without conversionId kept under a key stable across reads, their email found under another name."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sync.hubspot.portal import HubSpotPortal
from sync.sandbox import Portal
from sync.sandbox.records import FormRecord, Submission
from tests.hubspot.test_adapter_sandbox import READ, connected, read_all

T0 = 1_790_000_000_000
KINDS = ("hubspot", "flow", "captured", "blog_comment")


def many_forms() -> Portal:
    """230 forms, the types in turn, every seventh archived."""
    portal = Portal(12345678, created_ms=T0)
    for i in range(230):
        portal.add_form(FormRecord(f"f-{i:03}", f"Form {i}", T0, form_type=KINDS[i % 4], archived=i % 7 == 0))
    return portal


@pytest.mark.parametrize(
    ("form_types", "read"),
    [
        (None, ("hubspot", "flow", "captured")),
        (["blog_comment"], ("blog_comment",)),
        (["hubspot", "captured", "flow", "blog_comment"], KINDS),
        (["hubspot"], ("hubspot",)),
    ],
)
def test_forms_lists_every_page_of_the_types_asked_for_and_no_archived_form(
    form_types: Sequence[str] | None, read: tuple[str, ...]
) -> None:
    with connected(many_forms()) as (_, client):
        hub = HubSpotPortal(client, READ) if form_types is None else HubSpotPortal(client, READ, form_types)
        forms = hub.forms()
        calls = client.calls[("forms.list", 200)]
    expected = {f"f-{i:03}": f"Form {i}" for i in range(230) if KINDS[i % 4] in read and i % 7 != 0}
    assert forms == expected
    assert calls == -(-len(expected) // 100)  # pages of 100: all of them, and no more


def contact_form_portal() -> Portal:
    portal = Portal(12345678, created_ms=T0)
    portal.add_form(FormRecord("c-1", "Website contact form", T0, ("work_email",), form_type="captured"))
    portal.add_form(FormRecord("p-1", "Pop-up: book a demo", T0, form_type="flow"))
    subs = [
        Submission("c-1", f"internal-{i}", T0 + i * 1000, [("work_email", f"buyer{i}@voltgrid.ro", "0-1")],
                   "https://acme.example/contact", sends_conversion_id=False)
        for i in range(120)
    ] + [Submission("p-1", "cv-popup", T0, [("email", "ana@pop.ro")], "https://acme.example/pricing")]  # fmt: skip
    portal.bulk_load([], subs)
    return portal


def test_submissions_without_conversion_id_are_read_with_their_email_under_one_stable_key_each() -> None:
    with connected(contact_form_portal()) as (_, client):
        hub = HubSpotPortal(client, READ)
        forms = hub.forms()
        pages = list(hub.form_submissions("c-1", forms["c-1"], 0))
        first, problems = read_all(pages)
        again, _ = read_all(hub.form_submissions("c-1", forms["c-1"], 0))
        popup, _ = read_all(hub.form_submissions("p-1", forms["p-1"], 0))
    assert [len(page.submissions) for page in pages] == [50, 50, 20]  # a page at a time, never the form whole
    assert forms == {"c-1": "Website contact form", "p-1": "Pop-up: book a demo"}
    assert problems == []
    assert len(first) == 120 and {s.email for s in first} == {f"buyer{i}@voltgrid.ro" for i in range(120)}
    assert all(s.event_id.startswith("nocid:") for s in first)
    assert len({s.event_id for s in first}) == 120
    assert [s.event_id for s in again] == [s.event_id for s in first]
    assert [(s.event_id, s.email, s.form_name) for s in popup] == [("cv-popup", "ana@pop.ro", "Pop-up: book a demo")]
