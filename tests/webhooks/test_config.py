"""The `webhooks:` section of a portal file: the secret's variable by name, known signature versions, a full URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.config import load_portal
from sync.errors import ConfigError
from tests.factories import example_data


def load_with(tmp_path: Path, webhooks: Any) -> Any:
    data = example_data()
    data["webhooks"] = webhooks
    file = tmp_path / "portal.yaml"
    file.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_portal(file)


def test_a_webhooks_section_names_the_secrets_variable_and_defaults_to_v3(tmp_path: Path) -> None:
    loaded = load_with(tmp_path, {"secret_env": "HUBSPOT_APP_SECRET"})
    assert loaded.config.webhooks is not None
    assert (loaded.config.webhooks.secret_env, loaded.config.webhooks.signatures) == ("HUBSPOT_APP_SECRET", ["v3"])


@pytest.mark.parametrize(
    ("webhooks", "field", "message"),
    [
        ({"secret_env": "a1b2-c3d4-e5f6-0000"}, "webhooks.secret_env", "never the secret itself"),
        ({}, "webhooks.secret_env", ""),
        ({"secret_env": "S", "signatures": ["v4"]}, "webhooks.signatures", ""),
        ({"secret_env": "S", "signatures": ["v3", "v3"]}, "webhooks.signatures", "twice"),
        ({"secret_env": "S", "url": "leadsync.example.com/hook"}, "webhooks.url", "full URL"),
        ({"secret_env": "S", "url": "https://x.example.com/hook?a=1"}, "webhooks.url", "without a query"),
    ],
)
def test_a_bad_webhooks_section_is_an_error_naming_the_field(
    tmp_path: Path, webhooks: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_with(tmp_path, webhooks)
    found = [(p.path, p.message) for p in info.value.problems]
    assert any(f.startswith(field) and message in m for f, m in found), found
    assert all("a1b2-c3d4" not in m for _, m in found)  # a pasted secret is never echoed
