"""The `portal:` section: where the token comes from and where it travels."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from sync.config.checks.problems import Problems
from sync.config.schema import ENV_NAME, PortalConfig


def check_portal(p: Problems, cfg: PortalConfig) -> None:
    env = cfg.portal.token_env
    if not re.fullmatch(ENV_NAME, env):
        looks_like_token = env.startswith(("pat-", "Bearer")) or (len(env) >= 20 and "-" in env)
        p.error(
            ("portal", "token_env"),
            "this looks like a token pasted into the file; give the NAME of the environment variable that holds it"
            if looks_like_token
            else "must be the name of an environment variable (letters, digits, _)",
        )
    if not re.match(r"^https?://[^/\s]+", cfg.portal.base_url):
        p.error(("portal", "base_url"), "must be an http(s) URL")
    elif urlsplit(cfg.portal.base_url).scheme.lower() == "http" and not _loopback(cfg.portal.base_url):
        p.error(
            ("portal", "base_url"),
            "the token would travel in clear: use https:// (plain http only for a loopback sandbox)",
        )


def _loopback(url: str) -> bool:
    """Whether `url` names this machine: localhost, 127.0.0.0/8 or ::1."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
