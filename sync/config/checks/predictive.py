"""The `predictive:` section: a learned likelihood's model file, checked, and the two properties it writes."""

from __future__ import annotations

from pathlib import Path

from sync.config.checks.problems import Problems
from sync.config.model_file import read_model
from sync.config.schema import PortalConfig
from sync.config.walk import is_hubspot_property, model_entries, output_fields
from sync.core.likelihood import Predictive
from sync.errors import ConfigError

KINDS = ("likelihood", "factors")


def model_path(config_file: str, model: str) -> Path:
    """The model file a portal file names: a relative path is read from the portal file's folder."""
    path = Path(model)
    return path if path.is_absolute() else Path(config_file).parent / path


def predictive(p: Problems, cfg: PortalConfig) -> Predictive | None:
    """The section built: its model read and checked (hash, shape), its outputs leadsync's own and distinct
    from the score's; None with every problem recorded in `p`."""
    section = cfg.predictive
    if section is None:
        return None
    before = len(p)
    scored = {name: kind for mpath, m in model_entries(cfg) for kind, name, _ in output_fields(cfg, mpath, m)}
    names = {kind: getattr(section.properties, kind) for kind in KINDS}
    for kind, name in names.items():
        where = ("predictive", "properties", kind)
        if is_hubspot_property(name):
            p.error(where, f"{name} is a HubSpot default property: leadsync writes only properties of its own")
        elif name in scored:
            p.error(where, f"{name} is also a model's {scored[name]}: each output needs a name of its own")
    if names["likelihood"] == names["factors"]:
        p.error(("predictive", "properties", "factors"), "the likelihood and its factors need a property each")
    try:
        model, _ = read_model(model_path(p.locate.file, section.model))
    except ConfigError as exc:
        for problem in exc.problems:
            p.error(("predictive", "model"), f"{problem.file}: {problem.message}")
        return None
    if len(p) > before:
        return None
    return Predictive(model, names["likelihood"], names["factors"], section.model)
