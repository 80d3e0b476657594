"""Whether the mypyc-compiled scoring core matches its sources.

The compiled modules sit beside the sources and Python prefers them: after an
edit to sync/core, an old build would silently run the old code.
"""

from __future__ import annotations

from pathlib import Path

CORE = Path(__file__).resolve().parent / "core"


def stale_core_modules() -> list[str]:
    """Sources in sync/core newer than their compiled module."""
    return sorted(
        py.name
        for py in CORE.glob("*.py")
        for so in CORE.glob(f"{py.stem}.*.so")
        if so.stat().st_mtime < py.stat().st_mtime
    )


def core_kind() -> str:
    import sync.core.scoring  # noqa: PLC0415 - imported on demand: callers check the build before loading the core

    return "pure" if sync.core.scoring.__file__.endswith(".py") else "compiled"
