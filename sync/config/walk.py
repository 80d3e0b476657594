"""Walking a config: its models, the properties each writes, where its conditions and rules sit, what they read.

The checks use these, and so does the live check of a file against its portal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sync.config.schema import InterestModel, PortalConfig, ScoringModel
from sync.core import conditions as c
from sync.core.rules import BandRule, ConditionRule, MapRule, Rule, RuleSetSpec
from sync.yamlsource import Path_

# HubSpot's default contact properties leadsync must never write; every hs_ name is HubSpot's too.
HUBSPOT_CONTACT_PROPERTIES = frozenset(
    {
        "email", "firstname", "lastname", "phone", "mobilephone", "fax", "company", "jobtitle", "website",
        "address", "city", "state", "zip", "country", "numberofemployees", "industry", "annualrevenue",
        "lifecyclestage", "hubspotscore", "hubspot_owner_id", "hubspot_owner_assigneddate", "createdate",
        "lastmodifieddate", "closedate", "first_deal_created_date", "num_associated_deals",
        "notes_last_updated", "notes_last_contacted", "num_notes", "num_contacted_notes",
        "associatedcompanyid", "message", "salutation", "twitterhandle", "followercount", "linkedinbio",
        "linkedinconnections", "kloutscoregeneral", "recent_deal_amount", "recent_deal_close_date",
        "total_revenue", "days_to_close", "engagements_last_meeting_booked", "currentlyinworkflow", "ip_city",
        "ip_country", "ip_state", "ip_zipcode", "date_of_birth", "degree", "field_of_study", "school",
        "seniority", "job_function", "marital_status", "military_status", "relationship_status", "start_date",
        "graduation_date", "work_email",
    }
)  # fmt: skip
# HubSpot's default company properties leadsync must never write; every hs_ name is HubSpot's too.
HUBSPOT_COMPANY_PROPERTIES = frozenset(
    {
        "name", "domain", "website", "industry", "numberofemployees", "annualrevenue", "lifecyclestage",
        "type", "description", "phone", "address", "address2", "city", "state", "zip", "country", "timezone",
        "founded_year", "is_public", "total_money_raised", "web_technologies", "hubspot_owner_id",
        "hubspot_owner_assigneddate", "hubspot_team_id", "createdate", "closedate", "first_contact_createdate",
        "first_deal_created_date", "num_associated_contacts", "num_associated_deals", "num_contacted_notes",
        "num_notes", "notes_last_contacted", "notes_last_updated", "notes_next_activity_date",
        "engagements_last_meeting_booked", "recent_deal_amount", "recent_deal_close_date", "total_revenue",
        "days_to_close", "linkedin_company_page", "linkedinbio", "facebook_company_page", "facebookfans",
        "twitterhandle", "twitterbio", "twitterfollowers", "googleplus_page", "about_us",
        "associatedcompanyid", "lastmodifieddate",
    }
)  # fmt: skip
OUTPUT_KINDS = ("score", "fit", "engagement", "grade", "reasons", "scored_at")


def is_hubspot_property(name: str) -> bool:
    return name in HUBSPOT_CONTACT_PROPERTIES or name.startswith("hs_")


def is_hubspot_company_property(name: str) -> bool:
    return name in HUBSPOT_COMPANY_PROPERTIES or name.startswith("hs_")


def model_entries(cfg: PortalConfig) -> list[tuple[Path_, ScoringModel]]:
    if cfg.model is not None:
        return [(("model",), cfg.model)]
    return [(("models", i), m) for i, m in enumerate(cfg.models or [])]


def output_fields(cfg: PortalConfig, mpath: Path_, m: ScoringModel) -> Iterator[tuple[str, str, Path_]]:
    """(kind, property name, where the name is set) of each output of one model."""
    for kind in OUTPUT_KINDS:
        override = getattr(m.properties, kind) if m.properties is not None else None
        if override is not None:
            yield kind, override, (*mpath, "properties", kind)
        else:
            yield kind, getattr(cfg.properties, kind), ("properties", kind)


def interest_outputs(i: int, m: InterestModel) -> Iterator[tuple[str, str, Path_]]:
    """(kind, property name, where the name is set) of each output of the file's `i`th interest score; a default
    name is placed at the interest's name."""
    props = m.properties
    score = props.score if props is not None else None
    reasons = props.reasons if props is not None else None
    named: Path_ = ("interests", i, "name")
    yield "score", score or f"ls_interest_{m.name}", ("interests", i, "properties", "score") if score else named
    if reasons is not False:
        where = ("interests", i, "properties", "reasons") if reasons else named
        yield "reasons", reasons or f"ls_interest_{m.name}_reasons", where


@dataclass(frozen=True)
class Site:
    """Where in the file a condition or a rule sits, and the built value (a condition rule's condition too)."""

    path: Path_
    condition: c.Condition | None = None
    rule: Rule | None = None


def sites(cfg: PortalConfig, spec: RuleSetSpec) -> Iterator[Site]:
    """Every condition and rule of a built rule set, with its path in the file.

    A built spec keeps every item of a valid file in order, so indexes line up with the file's lists."""
    for i, ex in enumerate(spec.exclusions):
        yield Site(("exclusions", i), condition=ex.condition)
    for (mpath, _), model in zip(model_entries(cfg), spec.models, strict=True):
        if model.segment is not None:
            yield Site((*mpath, "segment"), condition=model.segment)
        for part, group in (("fit", model.fit), ("engagement", model.engagement)):
            for i, rule in enumerate(group.rules):
                here = (*mpath, part, "rules", i)
                if rule.when is not None:
                    yield Site((*here, "when"), condition=rule.when)
                condition = rule.condition if isinstance(rule, ConditionRule) else None
                yield Site(here, condition=condition, rule=rule)
        for i, stage_rule in enumerate(model.lifecycle.rules):
            yield Site((*mpath, "lifecycle", "rules", i, "when"), condition=stage_rule.condition)
    yield from _interest_sites(spec)


def _interest_sites(spec: RuleSetSpec) -> Iterator[Site]:
    for n, interest in enumerate(spec.interests):
        ipath: Path_ = ("interests", n)
        if interest.segment is not None:
            yield Site((*ipath, "segment"), condition=interest.segment)
        for i, rule in enumerate(interest.rules.rules):
            here = (*ipath, "rules", i)
            if rule.when is not None:
                yield Site((*here, "when"), condition=rule.when)
            yield Site(here, condition=rule.condition if isinstance(rule, ConditionRule) else None, rule=rule)


def property_reads(cfg: PortalConfig, spec: RuleSetSpec) -> Iterator[tuple[Path_, str]]:
    """(where, property name) for every contact property a rule, segment or exclusion reads."""
    for site in sites(cfg, spec):
        if isinstance(site.rule, MapRule | BandRule):
            yield site.path, site.rule.property
        if site.condition is not None:
            for node in c.walk(site.condition):
                if isinstance(node, c.PropertyTest):
                    yield site.path, node.property
