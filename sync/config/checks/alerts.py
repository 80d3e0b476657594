"""The `alerts:` section."""

from __future__ import annotations

import re

from sync.config.checks.problems import Problems
from sync.config.schema import ENV_NAME, AlertsModel


def check_alerts(p: Problems, alerts: AlertsModel) -> None:
    named = [(key, env) for key, env in (("url_env", alerts.url_env), ("webhook_env", alerts.webhook_env)) if env]
    if not named:
        p.error(("alerts", "url_env"), "required key is missing: the name of the variable holding the URL")
    elif len(named) > 1:
        p.error(("alerts", "webhook_env"), "give url_env or the deprecated webhook_env, not both")
    for key, env in named:
        if not re.fullmatch(ENV_NAME, env):
            # Never echo the value: it may be the URL itself.
            pasted = "://" in env or env.startswith("hooks.")
            what = "a webhook URL" if key == "webhook_env" else "an alert URL"
            p.error(
                ("alerts", key),
                f"this looks like {what} pasted into the file; give the NAME of the environment variable that holds it"
                if pasted
                else "must be the name of an environment variable (letters, digits, _)",
            )
