"""HubSpot's names for the contact properties the core and the layers above the adapters read or write.

Defined once here, as the core plans writes to `lifecyclestage`; the names only
the HubSpot adapter needs (hs_object_id, lastmodifieddate, createdate) live in
sync.hubspot.shapes.
"""

from __future__ import annotations

from typing import Final

LIFECYCLE_STAGE: Final = "lifecyclestage"  # moves forward only: a backward move is a clear, then a set
EMAIL: Final = "email"  # the contact's address; events reach a contact through it
