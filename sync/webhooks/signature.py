"""HubSpot's request signatures: v3 (HMAC-SHA256, base64, with a timestamp) and, for legacy apps, v1 and v2.

v3: base64(HMAC-SHA256(client secret, method + URI + body + X-HubSpot-Request-Timestamp)); a timestamp (epoch
ms) more than five minutes old is refused, so a captured request cannot be replayed. v2: hex SHA-256 of
secret + method + URI + body; v1: hex SHA-256 of secret + body (X-HubSpot-Signature, version in
X-HubSpot-Signature-Version). Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Collection, Mapping, Sequence
from typing import Literal

Version = Literal["v1", "v2", "v3"]
VERSIONS: tuple[Version, ...] = ("v3", "v2", "v1")
MAX_AGE_MS = 5 * 60 * 1000
SIGNATURE_V3 = "x-hubspot-signature-v3"
TIMESTAMP = "x-hubspot-request-timestamp"
SIGNATURE = "x-hubspot-signature"
SIGNATURE_VERSION = "x-hubspot-signature-version"

# HubSpot signs the v3 URI with these escapes decoded (its docs list them): decode them the same way.
_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
    "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip


class SignatureError(Exception):
    """The request is not proven to come from HubSpot (401): missing, wrong or stale signature."""


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    message = method.upper().encode() + _decoded(uri).encode() + body + str(timestamp_ms).encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def sign_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + method.upper().encode() + uri.encode() + body).hexdigest()


def sign_v1(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


def verify(
    secrets: Sequence[str],
    method: str,
    uri: str,
    body: bytes,
    headers: Mapping[str, str],
    now_ms: int,
    accept: Collection[Version] = VERSIONS[:1],
) -> str:
    """The secret (of `secrets`) that signed this request, by the first of `accept`'s versions it carries.

    `headers` are keyed in lower case. Raises SignatureError when no accepted signature matches."""
    if not secrets:
        raise SignatureError("no webhook secret is configured")
    if "v3" in accept and headers.get(SIGNATURE_V3):
        return _verify_v3(secrets, method, uri, body, headers, now_ms)
    legacy = (headers.get(SIGNATURE_VERSION) or "").strip().lower()
    signature = (headers.get(SIGNATURE) or "").strip()
    if legacy in ("v1", "v2") and legacy in accept and signature:
        for secret in secrets:
            expected = sign_v1(secret, body) if legacy == "v1" else sign_v2(secret, method, uri, body)
            if hmac.compare_digest(expected.encode(), signature.lower().encode()):
                return secret
        raise SignatureError(f"the {legacy} signature does not match")
    wanted = " or ".join(accept)
    raise SignatureError(f"no {wanted} signature on the request")


def _verify_v3(
    secrets: Sequence[str], method: str, uri: str, body: bytes, headers: Mapping[str, str], now_ms: int
) -> str:
    raw = (headers.get(TIMESTAMP) or "").strip()
    if not raw.isdigit():
        raise SignatureError("X-HubSpot-Request-Timestamp is missing or not epoch milliseconds")
    timestamp = int(raw)
    if now_ms - timestamp > MAX_AGE_MS:
        raise SignatureError(f"the request is stale: signed {(now_ms - timestamp) // 1000} s ago (5 minutes at most)")
    if timestamp - now_ms > MAX_AGE_MS:
        raise SignatureError("the request's timestamp is in the future (more than 5 minutes ahead)")
    signature = (headers.get(SIGNATURE_V3) or "").strip().encode()
    for secret in secrets:
        if hmac.compare_digest(sign_v3(secret, method, uri, body, timestamp).encode(), signature):
            return secret
    raise SignatureError("the v3 signature does not match")


def _decoded(uri: str) -> str:
    out = uri
    for escape, char in _DECODED.items():
        out = out.replace(escape, char).replace(escape.lower(), char)
    return out
