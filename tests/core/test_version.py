"""The rule-set version is a pure function of the rule set: the compiled and the pure-Python core agree on it."""

from __future__ import annotations

import pytest

from sync.config import load_portal
from tests.factories import EXAMPLE, ROOT

VALID = ROOT / "tests" / "data" / "valid"


@pytest.mark.parametrize(
    ("file", "version"),
    [
        (EXAMPLE, "deb9422c6ee0"),
        # No hysteresis given: the default must hash as the float the compiled core holds, in both builds.
        (VALID / "minimal.yaml", "369e71838684"),
        # The accounts section is hashed in (its dataclasses through the same canonical form).
        (ROOT / "tests" / "data" / "accounts" / "accounts.yaml", "7c6cea7d3ed7"),
    ],
)
def test_a_config_has_the_same_version_on_either_core(file: object, version: str) -> None:
    assert load_portal(str(file)).rules.version == version
