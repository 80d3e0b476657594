"""What the sync pipeline needs from the world, as Protocols; the adapters implement them.

Values crossing these ports are the core's (Contact, FormSubmission, EmailEvent,
PropertyUpdate) or the small frozen records below: raw HubSpot dicts stay in
the adapter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from sync.core.model import Contact, EmailEvent, FormSubmission, PropertyUpdate, StageChange


@dataclass(frozen=True)
class ContactPage:
    """One page of contacts; `after` resumes a backfill, `max_modified_ms` advances an incremental cursor."""

    contacts: list[Contact]
    problems: list[str] = field(default_factory=list)  # records skipped, with the reason
    after: str | None = None
    max_modified_ms: int | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A write HubSpot would not take, kept with the reason so nothing is dropped silently."""

    contact_id: str
    properties: Mapping[str, str]
    reason: str
    status: int = 0


@dataclass
class WriteOutcome:
    applied: list[str] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    calls: int = 0

    def add(self, other: WriteOutcome) -> None:
        self.applied += other.applied
        self.dead += other.dead
        self.calls += other.calls


PropertyType = Literal["number", "enumeration", "string", "datetime"]


@dataclass(frozen=True)
class PropertySpec:
    """A HubSpot contact property this worker owns."""

    name: str
    label: str
    type: PropertyType
    options: tuple[str, ...] = ()  # enumeration values


class CrmSource(Protocol):
    def contact_pages(self, after: str | None = None) -> Iterator[ContactPage]: ...

    def contacts_changed_since(self, since_ms: int) -> Iterator[ContactPage]: ...

    def read_contacts(self, ids: Sequence[str]) -> list[Contact]: ...

    def read_contacts_by_email(self, emails: Sequence[str]) -> list[Contact]: ...

    def forms(self) -> dict[str, str]: ...

    def form_submissions(
        self, form_id: str, form_name: str, since_ms: int
    ) -> tuple[list[FormSubmission], list[str]]: ...

    def email_events(self, start_ms: int, end_ms: int) -> Iterator[tuple[list[EmailEvent], list[str]]]: ...

    def list_members(self, list_id: int) -> set[str]: ...


class CrmWriter(Protocol):
    def ensure_properties(self, group: str, group_label: str, specs: Sequence[PropertySpec]) -> None: ...

    def update_contacts(self, updates: Sequence[PropertyUpdate]) -> WriteOutcome: ...

    def set_stages(self, changes: Sequence[StageChange]) -> WriteOutcome: ...


class Clock(Protocol):
    def now(self) -> datetime: ...
