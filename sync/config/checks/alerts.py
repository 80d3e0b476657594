"""The `alerts:` section."""

from __future__ import annotations

import re

from sync.config.checks.problems import Problems
from sync.config.schema import ENV_NAME, AlertsModel


def check_alerts(p: Problems, alerts: AlertsModel) -> None:
    if not re.fullmatch(ENV_NAME, alerts.webhook_env):
        # Never echo the value: it may be the webhook URL itself.
        p.error(
            ("alerts", "webhook_env"),
            "this looks like a webhook URL pasted into the file; give the NAME of the environment variable "
            "that holds it"
            if "://" in alerts.webhook_env or alerts.webhook_env.startswith("hooks.")
            else "must be the name of an environment variable (letters, digits, _)",
        )
