"""A portal config as it was at a git revision, `extends:` bases included (`plan --against-version`)."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

from sync.config import LoadedPortal, load_portal
from sync.errors import ConfigError, ConfigProblem

YAML_SUFFIXES = (".yaml", ".yml")


def _git(cwd: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False, timeout=60)
    except FileNotFoundError:
        raise _problem(str(cwd), "git is not installed: use --base-config FILE instead") from None
    if done.returncode != 0:
        raise _problem(str(cwd), done.stderr.decode(errors="replace").strip() or f"git {args[0]} failed")
    return done.stdout


def _problem(where: str, message: str) -> ConfigError:
    return ConfigError([ConfigProblem(where, None, "--against-version", message)])


def load_at_revision(config_file: str | Path, revision: str) -> LoadedPortal:
    """Load `config_file` as committed at `revision` (a commit, tag or branch of the repository holding it)."""
    path = Path(config_file).resolve()
    top = Path(_git(path.parent, "rev-parse", "--show-toplevel").decode().strip())
    relative = path.relative_to(top)
    try:
        _git(top, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    except ConfigError:
        raise _problem(
            str(top), f"unknown revision {revision!r} (a commit, tag or branch of this repository)"
        ) from None
    try:
        _git(top, "cat-file", "-e", f"{revision}:{relative.as_posix()}")
    except ConfigError:
        raise _problem(str(relative), f"the file does not exist at revision {revision}") from None
    archive = _git(top, "archive", "--format=tar", revision)
    with tempfile.TemporaryDirectory(prefix="leadsync-rev-") as tmp:
        root = Path(tmp)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            # Only the YAML files: the config and the bases it may extend.
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(YAML_SUFFIXES)]
            tar.extractall(root, members=members, filter="data")
        try:
            return load_portal(root / relative)
        except ConfigError as exc:  # name the files as they are in the repository, at the revision
            raise ConfigError(
                [ConfigProblem(f"{_inside(p.file, root)}@{revision}", p.line, p.path, p.message) for p in exc.problems]
            ) from exc


def _inside(file: str, root: Path) -> str:
    try:
        return Path(file).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return file
