"""Portal config: YAML -> validated PortalConfig (pydantic) -> the core's RuleSetSpec.

- `schema`: the pydantic models and the JSON Schema export (structure);
- `load`: reading a file (with `extends:`), validating it and reporting every problem with its line;
- `checks`: what the config means: the checks per section, and the core's frozen values built from it;
- `walk`: a config's models, their outputs, where its conditions and rules sit and what they read.

The names other modules use are importable from `sync.config` itself.
"""

from sync.config.checks import builtin_free_mail, parse_duration
from sync.config.load import (
    LoadedPortal,
    build_portal,
    duplicate_portals,
    load_portal,
    portal_files,
    portal_name,
)
from sync.config.schema import (
    TIER_LIMITS,
    AlertsModel,
    FormsModel,
    PortalConfig,
    RateLimitModel,
    ScheduleModel,
    ScoringModel,
    json_schema,
)
from sync.config.walk import (
    HUBSPOT_CONTACT_PROPERTIES,
    OUTPUT_KINDS,
    Site,
    is_hubspot_property,
    model_entries,
    output_fields,
    property_reads,
    sites,
)
from sync.core.version import ENGINE_VERSION, ruleset_version

__all__ = [
    "ENGINE_VERSION",
    "HUBSPOT_CONTACT_PROPERTIES",
    "OUTPUT_KINDS",
    "TIER_LIMITS",
    "AlertsModel",
    "FormsModel",
    "LoadedPortal",
    "PortalConfig",
    "RateLimitModel",
    "ScheduleModel",
    "ScoringModel",
    "Site",
    "build_portal",
    "builtin_free_mail",
    "duplicate_portals",
    "is_hubspot_property",
    "json_schema",
    "load_portal",
    "model_entries",
    "output_fields",
    "parse_duration",
    "portal_files",
    "portal_name",
    "property_reads",
    "ruleset_version",
    "sites",
]
