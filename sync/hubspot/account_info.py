"""The portal a token belongs to: GET /account-info/v3/details (the SDK has no typed call for it)."""

from __future__ import annotations

from sync.hubspot.client import HubSpotClient
from sync.hubspot.errors import TransientError
from sync.ports import AccountInfo

ENDPOINT = "account_info.details"
PATH = "/account-info/v3/details"


def account_info(client: HubSpotClient) -> AccountInfo:
    body = client.get(ENDPOINT, PATH, {}).body
    raw_id = body.get("portalId") if isinstance(body, dict) else None
    if isinstance(raw_id, bool) or not isinstance(raw_id, int | str) or not str(raw_id).isdigit():
        # A body without a portal id says nothing about the token: never treat it as a match.
        raise TransientError(ENDPOINT, 200, f"the answer has no portalId: {str(body)[:120]}")
    return AccountInfo(int(raw_id), str(body.get("timeZone") or "UTC"))
