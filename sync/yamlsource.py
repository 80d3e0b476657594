"""YAML files with line numbers, duplicate-key errors and `extends:` merging.

PyYAML follows YAML 1.1, where `yes`, `no`, `on` and `off` are booleans: a
map of `{yes: 5, no: -5}` would silently become `{True: 5, False: -5}`. The
loader here resolves only `true`/`false` as booleans (YAML 1.2), so values
stay as written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from sync.errors import ConfigProblem

Key = str | int
Path_ = tuple[Key, ...]
Lines = dict[Path_, tuple[str, int]]


class _Loader(yaml.SafeLoader):
    pass


# YAML 1.2 core schema for booleans and numbers: no yes/no/on/off booleans, no 1:30 sexagesimals.
_REPLACED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


class YamlError(Exception):
    def __init__(self, problem: ConfigProblem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def path_text(path: Path_) -> str:
    """('model', 'fit', 'rules', 3, 'lt') -> 'model.fit.rules[3].lt'."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def load_yaml(file: Path) -> tuple[Any, Lines]:
    """The document in `file` and the line of every key and list item in it."""
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlError(ConfigProblem(name, None, "", f"cannot read: {exc.strerror or exc}")) from exc
    except UnicodeDecodeError as exc:
        line = text_line_of(file.read_bytes(), exc.start)
        raise YamlError(ConfigProblem(name, line, "", "not UTF-8 text; save the file as UTF-8")) from exc
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: Lines = {}
        data = _build(loader, node, (), lines, name)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = mark.line + 1 if mark is not None else None
        message = f"not valid YAML: {exc.problem or exc}"
        if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise YamlError(ConfigProblem(name, where, "", message)) from exc
    except yaml.YAMLError as exc:
        raise YamlError(ConfigProblem(name, None, "", f"not valid YAML: {exc}")) from exc
    finally:
        loader.dispose()
    return data, lines


def text_line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _build(loader: _Loader, node: yaml.Node, path: Path_, lines: Lines, name: str) -> Any:
    lines.setdefault(path, (name, node.start_mark.line + 1))
    if isinstance(node, yaml.MappingNode):
        own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        loader.flatten_mapping(node)  # resolves `<<` merge keys; the mapping's own keys override merged ones
        out: dict[Any, Any] = {}
        own_seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, bool):
                key = str(key).lower()
            elif isinstance(key, int | float) or key is None:
                key = str(key)  # keys such as 1: in a map are values to match, i.e. text
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise YamlError(ConfigProblem(name, line, path_text(path), "keys must be plain text"))
            if id(key_node) in own:
                if key in own_seen:
                    raise YamlError(ConfigProblem(name, line, path_text((*path, key)), "duplicate key"))
                own_seen.add(key)
            lines[(*path, key)] = (name, line)
            out[key] = _build(loader, value_node, (*path, key), lines, name)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), lines, name) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _reroot(lines: Lines, old: Path_, new: Path_) -> Lines:
    n = len(old)
    return {new + key[n:]: where for key, where in lines.items() if key[:n] == old}


# Lists of mappings that all carry one of these keys merge item by item: rules by id, models by
# name, exclusions by reason, stages and stage rules by stage, grades by grade.
LIST_KEYS = ("id", "name", "reason", "stage", "grade")


def _list_key(items: list[Any]) -> str | None:
    for key in LIST_KEYS:
        if items and all(isinstance(i, dict) and key in i for i in items):
            return key
    return None


def merge(base: Any, base_lines: Lines, over: Any, over_lines: Lines) -> tuple[Any, Lines]:
    """`over` laid on `base`: mappings merge key by key, keyed lists item by item, the rest is replaced."""
    return _merge(base, base_lines, (), over, over_lines, ())


def _merge(b: Any, bl: Lines, bp: Path_, o: Any, ol: Lines, op: Path_) -> tuple[Any, Lines]:
    mp = op
    if isinstance(b, dict) and isinstance(o, dict):
        out: dict[Any, Any] = {}
        lines: Lines = {mp: ol.get(op) or bl[bp]} if (op in ol or bp in bl) else {}
        for key, value in b.items():
            if key in o:
                out[key], sub = _merge(value, bl, (*bp, key), o[key], ol, (*op, key))
            else:
                out[key], sub = value, _reroot(bl, (*bp, key), (*mp, key))
            lines.update(sub)
        for key, value in o.items():
            if key not in b:
                out[key] = value
                lines.update(_reroot(ol, (*op, key), (*mp, key)))
        return out, lines
    if isinstance(b, list) and isinstance(o, list):
        key = _list_key(b)
        # With a repeated id in the overriding list, it replaces the base list whole, so the
        # duplicate is reported instead of silently merged away.
        if key is not None and _list_key(o) == key and len({item[key] for item in o}) == len(o):
            over_by = {item[key]: i for i, item in enumerate(o)}
            merged: list[Any] = []
            lines = {mp: ol[op]} if op in ol else {}
            for i, item in enumerate(b):
                j = over_by.pop(item[key], None)
                target = (*mp, len(merged))
                if j is None:
                    value, sub = item, _reroot(bl, (*bp, i), target)
                else:
                    value, sub = _merge(item, bl, (*bp, i), o[j], ol, (*op, j))
                    sub = _reroot(sub, (*op, j), target)
                merged.append(value)
                lines.update(sub)
            for j in sorted(over_by.values()):
                lines.update(_reroot(ol, (*op, j), (*mp, len(merged))))
                merged.append(o[j])
            return merged, lines
    return o, _reroot(ol, op, mp)


def load_with_extends(file: Path, _stack: tuple[Path, ...] = ()) -> tuple[Any, Lines]:
    """Load `file`, merged onto the chain of files its `extends:` names (relative to it)."""
    data, lines = load_yaml(file)
    if not isinstance(data, dict) or "extends" not in data:
        return data, lines
    parent = data.pop("extends")
    where = lines.get(("extends",), (str(file), 1))[1]
    if not isinstance(parent, str) or not parent:
        raise YamlError(ConfigProblem(str(file), where, "extends", "must be the path of a base YAML file"))
    base_file = Path(os.path.normpath(file.parent / parent))  # shown as the user would write it
    if not base_file.is_file():
        raise YamlError(ConfigProblem(str(file), where, "extends", f"no such file: {parent}"))
    chain = (*_stack, file.resolve())
    if base_file.resolve() in chain:
        loop = " -> ".join(p.name for p in (*chain, base_file))
        raise YamlError(ConfigProblem(str(file), where, "extends", f"extends loops: {loop}"))
    base, base_lines = load_with_extends(base_file, chain)
    if not isinstance(base, dict):
        raise YamlError(ConfigProblem(str(base_file), 1, "", "a base config must be a mapping"))
    own = {k: v for k, v in lines.items() if k[:1] != ("extends",)}
    return merge(base, base_lines, data, own)
