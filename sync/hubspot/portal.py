"""HubSpotPortal: one portal's CrmSource and CrmWriter (and CompanySource, CompanyWriter), built from its config."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence

from sync.config import PortalConfig
from sync.core.model import Company, CompanyAssociation, Contact, PropertyUpdate, StageChange
from sync.errors import ConfigError, ConfigProblem
from sync.hubspot.account_info import account_info
from sync.hubspot.associations import Associations
from sync.hubspot.client import HubSpotClient
from sync.hubspot.companies import Companies
from sync.hubspot.contacts import Contacts
from sync.hubspot.engagement import Engagement
from sync.hubspot.limits import Budget, RateLimiter
from sync.hubspot.properties import Properties
from sync.hubspot.retry import RetryPolicy
from sync.hubspot.shapes import DEFAULT_FORM_TYPES
from sync.ports import (
    AccountInfo,
    CompanyPage,
    ContactPage,
    ConversionPage,
    EventPage,
    PropertyInfo,
    PropertySpec,
    SubmissionPage,
    WriteOutcome,
)


class HubSpotPortal:
    def __init__(
        self,
        client: HubSpotClient,
        contact_properties: Sequence[str],
        form_types: Sequence[str] = DEFAULT_FORM_TYPES,
        company_properties: Sequence[str] = (),
    ) -> None:
        self.client = client
        self.contacts = Contacts(client, contact_properties)
        self.engagement = Engagement(client, form_types)
        self.properties = Properties(client)
        self.companies = Companies(client, company_properties)
        self.associations = Associations(client)
        self.company_properties = Properties(client, "companies")

    @classmethod
    def from_config(
        cls,
        config: PortalConfig,
        contact_properties: Sequence[str],
        policy: RetryPolicy | None = None,
        company_properties: Sequence[str] = (),
    ) -> HubSpotPortal:
        token = os.environ.get(config.portal.token_env, "")
        if not token:
            raise ConfigError(
                [
                    ConfigProblem(
                        "environment",
                        None,
                        config.portal.token_env,
                        f"is not set: export the token of portal {config.portal.name} in it (its file's "
                        "portal.token_env names the variable)",
                    )
                ]
            )
        limits = config.effective_rate_limit()
        limiter = RateLimiter(Budget(limits.per_10s, limits.daily, limits.daily_reserve_pct, limits.search_per_second))
        client = HubSpotClient(token, config.portal.base_url, limiter, policy, portal=config.portal.name)
        return cls(client, contact_properties, config.forms.types, company_properties)

    def watch_stop(self, stop: threading.Event) -> None:
        """Calls made from now on stop waiting to be retried once `stop` is set (the running cycle's flag)."""
        self.client.stop = stop

    # CrmSource
    def account_info(self) -> AccountInfo:
        return account_info(self.client)

    def account_portal_id(self) -> int:
        return self.account_info().portal_id

    def contact_pages(self, after: str | None = None) -> Iterator[ContactPage]:
        return self.contacts.pages(after)

    def count_contacts(self) -> int:
        return self.contacts.count()

    def contacts_changed_since(self, since_ms: int, until_ms: int | None = None) -> Iterator[ContactPage]:
        return self.contacts.changed_since(since_ms, until_ms)

    def read_contacts(self, ids: Sequence[str]) -> list[Contact]:
        return self.contacts.read(ids)

    def read_contacts_by_email(self, emails: Sequence[str]) -> list[Contact]:
        return self.contacts.read(emails, by_email=True)

    def forms(self) -> dict[str, str]:
        return self.engagement.forms()

    def contacts_converted_since(self, since_ms: int) -> Iterator[ConversionPage]:
        return self.contacts.converted_since(since_ms)

    def form_submissions(self, form_id: str, form_name: str, since_ms: int) -> Iterator[SubmissionPage]:
        return self.engagement.submissions(form_id, form_name, since_ms)

    def email_events(self, start_ms: int, end_ms: int) -> Iterator[EventPage]:
        return self.engagement.email_events(start_ms, end_ms)

    def list_members(self, list_id: int) -> set[str]:
        return self.engagement.list_members(list_id)

    # the read-only checks (validate --live, plan)
    def property_definitions(self) -> dict[str, PropertyInfo]:
        return self.properties.definitions()

    def list_name(self, list_id: int) -> str | None:
        return self.engagement.list_name(list_id)

    # CrmWriter
    def ensure_properties(self, group: str, group_label: str, specs: Sequence[PropertySpec]) -> None:
        self.properties.ensure(group, group_label, specs)

    def update_contacts(self, updates: Sequence[PropertyUpdate]) -> WriteOutcome:
        return self.contacts.update(updates)

    def set_stages(self, changes: Sequence[StageChange]) -> WriteOutcome:
        return self.contacts.set_stages(changes)

    # CompanySource
    def company_pages(self, after: str | None = None) -> Iterator[CompanyPage]:
        return self.companies.pages(after)

    def companies_changed_since(self, since_ms: int, until_ms: int | None = None) -> Iterator[CompanyPage]:
        return self.companies.changed_since(since_ms, until_ms)

    def read_companies(self, ids: Sequence[str]) -> list[Company]:
        return self.companies.read(ids)

    def company_associations(self, contact_ids: Sequence[str]) -> tuple[list[CompanyAssociation], list[str]]:
        return self.associations.of_contacts(contact_ids)

    def company_contacts(self, company_ids: Sequence[str]) -> tuple[list[CompanyAssociation], list[str]]:
        return self.associations.of_companies(company_ids)

    def company_property_definitions(self) -> dict[str, PropertyInfo]:
        return self.company_properties.definitions()

    # CompanyWriter
    def ensure_company_properties(self, group: str, group_label: str, specs: Sequence[PropertySpec]) -> None:
        """Create leadsync's company group and properties; from then on only those are written."""
        self.company_properties.ensure(group, group_label, specs)
        self.companies.owned = frozenset(spec.name for spec in specs)

    def update_companies(self, updates: Sequence[PropertyUpdate]) -> WriteOutcome:
        return self.companies.update(updates)
