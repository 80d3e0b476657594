"""The reasons of refused writes: HubSpot's own message shape as well as the sandbox's error list."""

from __future__ import annotations

import json

from sync.hubspot.refusals import explain_refusal


def test_hubspots_problems_listed_as_json_in_the_message_are_read() -> None:
    problems = [
        {
            "isValid": False,
            "message": '"productqualified" was not one of the allowed options: [label: "Lead"\\n value: "lead"]',
            "error": "INVALID_OPTION",
            "name": "lifecyclestage",
        }
    ]
    message = "Property values were not valid: " + json.dumps(problems)
    reason = explain_refusal(
        {"status": "error", "category": "VALIDATION_ERROR", "message": message},
        message,
        {"lifecyclestage": "productqualified", "ls_score": "61"},
        lambda name: ["subscriber", "lead"] if name == "lifecyclestage" else None,
    )
    assert reason == (
        "HubSpot rejected lifecyclestage=productqualified: not an option of lifecyclestage (options: subscriber, "
        "lead); add the option in HubSpot or change lifecycle stages in the config"
    )


def test_an_unknown_refusal_keeps_hubspots_words() -> None:
    body = {"errors": [{"code": "INVALID_NUMBER", "message": "'x' was not a valid number.", "context": {}}]}
    assert explain_refusal(body, "Property values were not valid", {}, lambda n: None) == (
        "Property values were not valid"
    )
    named = {"errors": [{"code": "INVALID_NUMBER", "context": {"propertyName": ["ls_score"]}}]}
    assert explain_refusal(named, "bad number", {"ls_score": "x"}, lambda n: None) == (
        "HubSpot rejected ls_score=x: bad number"
    )
