"""Speed to lead: HubSpot's webhooks as a hint, the scheduled poll as the safety net.

- signature: HubSpot's v3 request signature (and v1/v2 for legacy apps), stale requests refused
- deliveries: a delivery's JSON parsed into contact events, repeats recognised
- queue: contacts waiting, coalesced per (portal, contact), bounded, grouped about a second per portal
- fastpath: a batch of contacts read in one call, scored and written through the cycle's own gate and outbox
- intake: the POST /webhooks/hubspot receiver of `leadsync run` and its dispatcher
"""

from sync.webhooks.deliveries import ContactEvent, DeliveryError, Seen, parse_delivery
from sync.webhooks.fastpath import CONVERSION_PROPERTIES, FormNames, run_fast_path
from sync.webhooks.intake import PATH, Intake, Target, settings_of
from sync.webhooks.queue import IntakeQueue
from sync.webhooks.signature import SignatureError, sign_v1, sign_v2, sign_v3, verify

__all__ = [
    "CONVERSION_PROPERTIES",
    "PATH",
    "ContactEvent",
    "DeliveryError",
    "FormNames",
    "Intake",
    "IntakeQueue",
    "Seen",
    "SignatureError",
    "Target",
    "parse_delivery",
    "run_fast_path",
    "settings_of",
    "sign_v1",
    "sign_v2",
    "sign_v3",
    "verify",
]
