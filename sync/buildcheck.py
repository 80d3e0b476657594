"""Whether the mypyc-compiled scoring core matches its sources.

The compiled modules sit beside the sources and Python prefers them: after an
edit to sync/core, an old build would silently run the old code. Only a
source checkout (an editable install) can go stale that way: an installed
wheel carries matching files whose times say nothing (they are unpacked in
any order), so the check is made only where the project's pyproject.toml
sits above the package.
"""

from __future__ import annotations

from pathlib import Path

CORE = Path(__file__).resolve().parent / "core"


def stale_core_modules() -> list[str]:
    """Sources in sync/core newer than their compiled module (in a source checkout)."""
    if not (CORE.parent.parent / "pyproject.toml").is_file():
        return []
    return sorted(
        py.name
        for py in CORE.glob("*.py")
        for so in CORE.glob(f"{py.stem}.*.so")
        if so.stat().st_mtime < py.stat().st_mtime
    )


def core_kind() -> str:
    import sync.core.scoring  # noqa: PLC0415 - imported on demand: callers check the build before loading the core

    return "pure" if sync.core.scoring.__file__.endswith(".py") else "compiled"
