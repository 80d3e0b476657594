"""HubSpot's request signatures: v3 checked with its timestamp, v1 and v2 only where a portal accepts them."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from sync.webhooks import SignatureError, sign_v1, sign_v2, sign_v3, verify

SECRET = "client-secret-1"
URI = "https://leadsync.example.com/webhooks/hubspot"
BODY = b'[{"eventId":1,"portalId":7,"objectId":5,"subscriptionType":"contact.creation","occurredAt":1}]'
NOW_MS = 1_800_000_000_000


def v3_headers(signature: str, timestamp: int = NOW_MS) -> dict[str, str]:
    return {"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": str(timestamp)}


def test_a_v3_signature_is_hmac_sha256_over_method_uri_body_and_timestamp_in_base64() -> None:
    message = b"POST" + URI.encode() + BODY + str(NOW_MS).encode()
    expected = base64.b64encode(hmac.new(SECRET.encode(), message, hashlib.sha256).digest()).decode()
    assert sign_v3(SECRET, "post", URI, BODY, NOW_MS) == expected


def test_a_good_v3_signature_names_the_secret_that_signed_it() -> None:
    headers = v3_headers(sign_v3(SECRET, "POST", URI, BODY, NOW_MS - 1000))
    headers["x-hubspot-request-timestamp"] = str(NOW_MS - 1000)
    assert verify(["another", SECRET], "POST", URI, BODY, headers, NOW_MS) == SECRET


@pytest.mark.parametrize(
    ("secret", "body", "uri", "age_ms", "problem"),
    [
        ("wrong-secret", BODY, URI, 0, "does not match"),
        (SECRET, BODY + b" ", URI, 0, "does not match"),
        (SECRET, BODY, URI + "?x=1", 0, "does not match"),
        (SECRET, BODY, URI, 5 * 60 * 1000 + 1, "stale"),
        (SECRET, BODY, URI, -(5 * 60 * 1000 + 1), "future"),
    ],
    ids=["wrong secret", "body changed", "uri changed", "older than 5 minutes", "from the future"],
)
def test_a_bad_or_stale_v3_signature_is_refused(secret: str, body: bytes, uri: str, age_ms: int, problem: str) -> None:
    signed_at = NOW_MS - age_ms
    headers = v3_headers(sign_v3(secret, "POST", uri, body, signed_at), signed_at)
    with pytest.raises(SignatureError, match=problem):
        verify([SECRET], "POST", URI, BODY, headers, NOW_MS)


def test_the_v3_uri_is_compared_with_hubspots_escapes_decoded() -> None:
    encoded = "https://leadsync.example.com/webhooks/hubspot?next=a%3Ab%2Fc"
    decoded = "https://leadsync.example.com/webhooks/hubspot?next=a:b/c"
    signature = base64.b64encode(
        hmac.new(SECRET.encode(), b"POST" + decoded.encode() + BODY + str(NOW_MS).encode(), hashlib.sha256).digest()
    ).decode()
    assert verify([SECRET], "POST", encoded, BODY, v3_headers(signature), NOW_MS) == SECRET


def test_a_request_without_signature_or_timestamp_is_refused() -> None:
    with pytest.raises(SignatureError, match="no v3 signature"):
        verify([SECRET], "POST", URI, BODY, {}, NOW_MS)
    with pytest.raises(SignatureError, match="Timestamp"):
        verify([SECRET], "POST", URI, BODY, {"x-hubspot-signature-v3": "abc"}, NOW_MS)


@pytest.mark.parametrize(
    ("version", "signature"),
    [("v1", sign_v1(SECRET, BODY)), ("v2", sign_v2(SECRET, "POST", URI, BODY))],
)
def test_legacy_signatures_pass_only_where_accepted(version: str, signature: str) -> None:
    headers = {"x-hubspot-signature": signature, "x-hubspot-signature-version": version}
    assert verify([SECRET], "POST", URI, BODY, headers, NOW_MS, accept=("v3", "v2", "v1")) == SECRET
    with pytest.raises(SignatureError):
        verify([SECRET], "POST", URI, BODY, headers, NOW_MS)  # v3 only by default
    headers["x-hubspot-signature"] = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    with pytest.raises(SignatureError, match="does not match"):
        verify([SECRET], "POST", URI, BODY, headers, NOW_MS, accept=("v1", "v2"))


def test_legacy_signatures_are_sha256_hex_of_the_secret_and_the_request() -> None:
    assert sign_v1(SECRET, BODY) == hashlib.sha256(SECRET.encode() + BODY).hexdigest()
    v2 = hashlib.sha256(SECRET.encode() + b"POST" + URI.encode() + BODY).hexdigest()
    assert sign_v2(SECRET, "POST", URI, BODY) == v2
