"""A local HubSpot-compatible API on loopback: demos, tests, benchmarks, fault injection.

    from sync.sandbox import Sandbox, generate_portal
    with Sandbox(generate_portal(1000, seed=1), port=0) as sb:
        ...  # sb.url, sb.token

Names load on first use, so `leadsync --help` (which mounts the sandbox command) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sync.sandbox.faults import FaultSpec
    from sync.sandbox.generator import generate_portal
    from sync.sandbox.limits import RateLimitSpec
    from sync.sandbox.portal import Portal
    from sync.sandbox.server import Sandbox

__all__ = ["FaultSpec", "Portal", "RateLimitSpec", "Sandbox", "generate_portal"]
_HOMES = {
    "FaultSpec": "sync.sandbox.faults",
    "Portal": "sync.sandbox.portal",
    "RateLimitSpec": "sync.sandbox.limits",
    "Sandbox": "sync.sandbox.server",
    "generate_portal": "sync.sandbox.generator",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'sync.sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
