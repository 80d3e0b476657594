"""The `webhooks:` section."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sync.config.checks.problems import Problems
from sync.config.schema import ENV_NAME, WebhooksModel


def check_webhooks(p: Problems, webhooks: WebhooksModel) -> None:
    if not re.fullmatch(ENV_NAME, webhooks.secret_env):
        # Never echo the value: it may be the secret itself.
        p.error(
            ("webhooks", "secret_env"),
            "must be the name of an environment variable (letters, digits, _) holding the app's client secret, "
            "never the secret itself",
        )
    if len(set(webhooks.signatures)) != len(webhooks.signatures):
        p.error(("webhooks", "signatures"), "lists a version twice")
    if webhooks.url is not None:
        parts = urlsplit(webhooks.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            p.error(
                ("webhooks", "url"),
                "must be the full URL HubSpot posts to, e.g. https://leadsync.example.com/webhooks/hubspot",
            )
        elif parts.query or parts.fragment:
            p.error(("webhooks", "url"), "give the URL without a query or fragment")
