"""The check that keeps a stale compiled core from running."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync import buildcheck, cli


def stale_tree(root: Path) -> Path:
    core = root / "sync" / "core"
    core.mkdir(parents=True)
    (core / "rules.py").write_text("x = 1\n")
    (core / "rules.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    (core / "scoring.py").write_text("x = 1\n")  # never compiled: not stale
    os.utime(core / "rules.cpython-311-x86_64-linux-gnu.so", (1, 1))
    return core


def test_a_source_newer_than_its_compiled_module_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    monkeypatch.setattr(buildcheck, "CORE", stale_tree(tmp_path))
    assert buildcheck.stale_core_modules() == ["rules.py"]


def test_an_installed_package_is_not_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # site-packages: no pyproject.toml above the package, file times from unpacking the wheel
    monkeypatch.setattr(buildcheck, "CORE", stale_tree(tmp_path))
    assert buildcheck.stale_core_modules() == []


def test_the_cli_refuses_to_run_a_stale_core(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "stale_core_modules", lambda: ["rules.py"])
    assert cli.main(["schema"]) == 1
    assert "older than rules.py" in capsys.readouterr().err
