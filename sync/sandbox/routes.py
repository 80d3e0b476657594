"""The API endpoints: one function per route, request in, reply out, over a Portal.

Paging limits (documented choices): the CRM v3 endpoints answer 400 to a limit out of
range, as HubSpot's do; the legacy v1 endpoints (submissions, email events) and the
forms and lists endpoints clamp it to their maximum.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sync.hubspot.shapes import FORM_TYPES
from sync.sandbox.portal import (
    COMPANIES,
    COMPANY_NOT_FOUND_MESSAGE,
    CONTACTS,
    NOT_FOUND_MESSAGE,
    FailureChooser,
    Portal,
)
from sync.sandbox.wire import JsonObject, bad_request, iso_ms, query_int, query_str

LIST_LIMIT_MAX = 100
FORMS_LIMIT_MAX = 100
SUBMISSIONS_LIMIT_MAX = 50
EVENTS_LIMIT_MAX = 1000
MEMBERSHIPS_LIMIT_MAX = 250


@dataclass
class ApiRequest:
    method: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any
    now_ms: int
    choose_failures: FailureChooser | None = None
    expire_offset: bool = False  # the offset fault: the email events offset this request carries has expired


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Portal, ApiRequest], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    search: bool = False  # its own per-second limit, no rate-limit headers
    write: bool = False  # a reset fault may or may not have applied it
    batch_update: bool = False  # the only route a partial fault applies to
    offsets: bool = False  # paged by a short-lived offset: the offset fault applies to a request carrying one
    pattern: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


def _properties_param(query: dict[str, list[str]]) -> list[str] | None:
    """`properties=a,b` and `properties=a&properties=b` (the SDK's form) alike."""
    values = query.get("properties")
    if not values:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


def _limit(query: dict[str, list[str]], default: int, maximum: int, *, strict: bool) -> int:
    limit = query_int(query, "limit", default)
    if strict and not 0 < limit <= maximum:
        raise bad_request(f"limit must be between 1 and {maximum}, got {limit}")
    return min(max(limit, 1), maximum)


# --- CRM objects (contacts, companies): one set of handlers, bound to an object type in `_object_routes` ---------


def list_objects(kind: str, portal: Portal, req: ApiRequest) -> Reply:
    limit = _limit(req.query, 10, LIST_LIMIT_MAX, strict=True)
    return Reply(200, portal.list_contacts(limit, query_str(req.query, "after"), _properties_param(req.query), kind))


def get_object(kind: str, id_param: str, portal: Portal, req: ApiRequest) -> Reply:
    key, requested = req.params[id_param], _properties_param(req.query)
    return Reply(200, portal.get_contact(key, requested, query_str(req.query, "idProperty"), kind))


def search_objects(kind: str, portal: Portal, req: ApiRequest) -> Reply:
    return Reply(200, portal.search(req.body, kind, req.now_ms))  # as of now: search lags writes


def _batch_reply(req: ApiRequest, results: list[JsonObject], errors: list[JsonObject], count: int) -> Reply:
    at = iso_ms(req.now_ms)
    body: JsonObject = {"status": "COMPLETE", "results": results, "startedAt": at, "completedAt": at}
    if not errors:
        return Reply(200, body)
    # HubSpot answers 207 Multi-Status when some inputs failed; the SDK parses it as ...WithErrors.
    body["numErrors"] = count
    body["errors"] = errors
    return Reply(207, body)


def _failed_ids(errors: list[JsonObject]) -> int:
    return sum(len(e["context"]["ids"]) for e in errors)


def batch_read(kind: str, not_found: str, portal: Portal, req: ApiRequest) -> Reply:
    results, missing = portal.batch_read(req.body, kind)
    errors: list[JsonObject] = []
    if missing:
        errors.append(
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": not_found,
                "context": {"ids": missing},
                "errors": [],
                "links": {},
            }
        )
    return _batch_reply(req, results, errors, _failed_ids(errors))


def batch_update(kind: str, portal: Portal, req: ApiRequest) -> Reply:
    results, errors = portal.batch_update(req.body, req.now_ms, req.choose_failures, kind)
    return _batch_reply(req, results, errors, _failed_ids(errors))


def list_properties(kind: str, portal: Portal, req: ApiRequest) -> Reply:
    return Reply(200, {"results": portal.properties(kind)})


def get_property(kind: str, portal: Portal, req: ApiRequest) -> Reply:
    return Reply(200, portal.property(req.params["propertyName"], kind))


def create_property(kind: str, portal: Portal, req: ApiRequest) -> Reply:
    return Reply(201, portal.create_property(req.body, req.now_ms, kind))


def update_property(kind: str, portal: Portal, req: ApiRequest) -> Reply:
    return Reply(200, portal.update_property(req.params["propertyName"], req.body, req.now_ms, kind))


def list_groups(kind: str, portal: Portal, req: ApiRequest) -> Reply:
    return Reply(200, {"results": portal.groups(kind)})


def get_group(kind: str, portal: Portal, req: ApiRequest) -> Reply:
    return Reply(200, portal.group(req.params["groupName"], kind))


def create_group(kind: str, portal: Portal, req: ApiRequest) -> Reply:
    return Reply(201, portal.create_group(req.body, kind))


def read_associations(kind: str, portal: Portal, req: ApiRequest) -> Reply:
    # Ids without an association come back as errors of a 207, one each.
    results, errors = portal.read_associations(kind, req.body)
    return _batch_reply(req, results, errors, len(errors))


def _object_routes(kind: str, id_param: str, not_found: str) -> tuple[Route, ...]:
    """A CRM object type's endpoints. Order matters where templates overlap: /groups before /{propertyName},
    /search and /batch before the object's id."""
    objects, props = f"/crm/v3/objects/{kind}", f"/crm/v3/properties/{kind}"
    return (
        Route("GET", objects, partial(list_objects, kind)),
        Route("POST", f"{objects}/search", partial(search_objects, kind), search=True),
        Route("POST", f"{objects}/batch/read", partial(batch_read, kind, not_found)),
        Route("POST", f"{objects}/batch/update", partial(batch_update, kind), write=True, batch_update=True),
        Route("GET", f"{objects}/{{{id_param}}}", partial(get_object, kind, id_param)),
        Route("GET", f"{props}/groups", partial(list_groups, kind)),
        Route("POST", f"{props}/groups", partial(create_group, kind), write=True),
        Route("GET", f"{props}/groups/{{groupName}}", partial(get_group, kind)),
        Route("GET", props, partial(list_properties, kind)),
        Route("POST", props, partial(create_property, kind), write=True),
        Route("GET", f"{props}/{{propertyName}}", partial(get_property, kind)),
        Route("PATCH", f"{props}/{{propertyName}}", partial(update_property, kind), write=True),
    )


def _form_types(query: dict[str, list[str]]) -> set[str]:
    """`formTypes=flow&formTypes=captured` (the SDK's form) or `formTypes=flow,captured`; `all` is every type.
    Without it HubSpot lists only `hubspot` forms."""
    asked = {t.strip() for value in query.get("formTypes") or [] for t in value.split(",") if t.strip()}
    if not asked:
        return {"hubspot"}
    unknown = sorted(asked - set(FORM_TYPES) - {"all"})
    if unknown:
        raise bad_request(f"formTypes: {', '.join(unknown)} is not one of {', '.join((*FORM_TYPES, 'all'))}")
    return set(FORM_TYPES) if "all" in asked else asked


def list_forms(portal: Portal, req: ApiRequest) -> Reply:
    limit = _limit(req.query, 20, FORMS_LIMIT_MAX, strict=False)
    archived = (query_str(req.query, "archived") or "false").lower()
    if archived not in ("true", "false"):
        raise bad_request(f"archived must be true or false, got {archived!r}")
    body = portal.forms(limit, query_str(req.query, "after"), _form_types(req.query), archived == "true")
    return Reply(200, body)


def get_form(portal: Portal, req: ApiRequest) -> Reply:
    return Reply(200, portal.form(req.params["formId"]))


def form_submissions(portal: Portal, req: ApiRequest) -> Reply:
    limit = _limit(req.query, 20, SUBMISSIONS_LIMIT_MAX, strict=False)
    return Reply(200, portal.submissions(req.params["formId"], limit, query_str(req.query, "after")))


def email_events(portal: Portal, req: ApiRequest) -> Reply:
    q = req.query
    exclude = (query_str(q, "excludeFilteredEvents") or "false").lower()
    if exclude not in ("true", "false"):
        raise bad_request(f"excludeFilteredEvents must be true or false, got {exclude!r}")
    start = query_int(q, "startTimestamp", -1)
    end = query_int(q, "endTimestamp", -1)
    body = portal.email_events(
        start=None if start < 0 else start,
        end=None if end < 0 else end,
        event_type=query_str(q, "eventType"),
        exclude_filtered=exclude == "true",
        offset=query_str(q, "offset"),
        limit=_limit(q, 100, EVENTS_LIMIT_MAX, strict=False),
        now_ms=req.now_ms,
        expire_offset=req.expire_offset,
    )
    return Reply(200, body)


def list_memberships(portal: Portal, req: ApiRequest) -> Reply:
    limit = _limit(req.query, 100, MEMBERSHIPS_LIMIT_MAX, strict=False)
    return Reply(200, portal.memberships(req.params["listId"], limit, query_str(req.query, "after")))


def account_info(portal: Portal, req: ApiRequest) -> Reply:
    return Reply(200, portal.account_info())


def get_list(portal: Portal, req: ApiRequest) -> Reply:
    return Reply(200, portal.list_info(req.params["listId"]))


API_ROUTES = (
    *_object_routes(CONTACTS, "contactId", NOT_FOUND_MESSAGE),
    *_object_routes(COMPANIES, "companyId", COMPANY_NOT_FOUND_MESSAGE),
    Route("POST", "/crm/v4/associations/contacts/companies/batch/read", partial(read_associations, CONTACTS)),
    Route("POST", "/crm/v4/associations/companies/contacts/batch/read", partial(read_associations, COMPANIES)),
    Route("GET", "/marketing/v3/forms", list_forms),
    Route("GET", "/marketing/v3/forms/{formId}", get_form),
    Route("GET", "/form-integrations/v1/submissions/forms/{formId}", form_submissions),
    Route("GET", "/email/public/v1/events", email_events, offsets=True),
    Route("GET", "/crm/v3/lists/{listId}/memberships", list_memberships),
    Route("GET", "/crm/v3/lists/{listId}", get_list),
    Route("GET", "/account-info/v3/details", account_info),
)


def match(routes: tuple[Route, ...], method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    """(route, path params, whether the path exists under another method)."""
    path_known = False
    for route in routes:
        found = route.pattern.match(path)
        if found:
            if route.method == method:
                return route, found.groupdict(), True
            path_known = True
    return None, {}, path_known


def new_id() -> str:
    return str(uuid.uuid4())
