"""YAML files with line numbers, duplicate-key errors and `extends:` merging.

PyYAML follows YAML 1.1, where `yes`, `no`, `on` and `off` are booleans: a
map of `{yes: 5, no: -5}` would silently become `{True: 5, False: -5}`. The
loader here resolves only `true`/`false` as booleans (YAML 1.2), so values
stay as written.

A portal file is small and written by hand, so the loader refuses what no such file needs and what
could make loading hang or crash: nesting deeper than MAX_DEPTH, a document that expands to more than
MAX_NODES values (anchors and aliases repeated inside each other, the "billion laughs"; merge keys
count the same way), NaN and infinities, and numbers too large to mean anything. Each is an error
with the file, line and field; the size is counted on the composed graph (once per distinct node)
before anything is expanded.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import yaml

from sync.errors import ConfigProblem

Key = str | int
Path_ = tuple[Key, ...]
Lines = dict[Path_, tuple[str, int]]


# Bounds no real portal file comes near (the largest shipped example has a few hundred values, nested
# 7 deep); they are stated in the errors.
MAX_DEPTH = 64
MAX_NODES = 50_000
MAX_FLOAT = 1e15  # beyond this a float no longer holds whole numbers exactly, and no score or bound needs it
MAX_INT = 2**63 - 1  # HubSpot ids are 64-bit

_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader with a nesting limit while composing: the composer recurses once per level."""

    def __init__(self, stream: str, name: str) -> None:
        super().__init__(stream)
        self.file_name = name
        self.nesting: list[Key] = []

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's name
        # The scanner looks up to 1,024 characters ahead for a key and its work grows with the flow level
        # (`[[[[...` on one line): stop at the limit here, before the composer would.
        if self.flow_level >= MAX_DEPTH:
            mark = self.get_mark()
            raise YamlError(ConfigProblem(self.file_name, mark.line + 1, _nesting_text(self.nesting), _DEEP))
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # `index` is the key node of a mapping value, the position of a sequence item, None for a key.
        step = index.value if isinstance(index, yaml.ScalarNode) else index if isinstance(index, int) else None
        if step is not None:
            self.nesting.append(step)
        try:
            if len(self.nesting) > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlError(ConfigProblem(self.file_name, mark.line + 1, _nesting_text(self.nesting), _DEEP))
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            if step is not None:
                self.nesting.pop()


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


def load_yaml(file: Path, check_numbers: bool = True) -> tuple[Any, Lines]:
    """The document in `file` and the line of every key and list item in it.

    `check_numbers=False` lets NaN, infinities and huge numbers through (the bounds on nesting and size
    hold regardless): only to read what else a file says, never to use its numbers.
    """
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlError(ConfigProblem(name, None, "", f"cannot read: {exc.strerror or exc}")) from exc
    except UnicodeDecodeError as exc:
        line = text_line_of(file.read_bytes(), exc.start)
        raise YamlError(ConfigProblem(name, line, "", "not UTF-8 text; save the file as UTF-8")) from exc
    loader = _Loader(text, name)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        builder = _Build(loader, name, check_numbers)
        builder.check_size(node)
        data = builder.node(node, (), 0)
        lines = builder.lines
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


_DEEP = f"nested more than {MAX_DEPTH} levels deep; a portal file never needs that many"


def _children(node: yaml.Node) -> list[tuple[Key | None, yaml.Node]]:
    """The values inside a node, each with its step in the path (None: a mapping merged in by `<<`)."""
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    if not isinstance(node, yaml.MappingNode):
        return []
    found: list[tuple[Key | None, yaml.Node]] = []
    for key, value in node.value:
        if key.tag == _MERGE:
            found.extend((None, v) for v in (value.value if isinstance(value, yaml.SequenceNode) else [value]))
        else:
            found.append((key.value if isinstance(key, yaml.ScalarNode) else "?", value))
    return found


def _nesting_text(path: Sequence[Key]) -> str:
    """The start of a deep path: enough to find it, not 64 levels of it."""
    return path_text(tuple(path[:8])) + ("..." if len(path) > 8 else "")


class _Build:
    """The Python value of a composed document, with the line of every key and item, within the bounds."""

    def __init__(self, loader: _Loader, name: str, check_numbers: bool = True) -> None:
        self.loader, self.name, self.check_numbers = loader, name, check_numbers
        self.lines: Lines = {}
        self.sizes: dict[int, int] = {}  # id(node) -> the number of values it expands to
        self.open: set[int] = set()  # the nodes whose size is being counted: one seen again is inside itself

    def check_size(self, root: yaml.Node) -> None:
        """Refuse a document that expands to more than MAX_NODES values before expanding any of it.

        Sizes are counted once per distinct node, so an alias bomb costs as much as its text; the error
        points at the innermost value that is too large by itself.
        """
        if self.size(root, (), 0) <= MAX_NODES:
            return
        node, path = root, cast(Path_, ())
        while True:
            inner = next(((step, c) for step, c in _children(node) if self.sizes[id(c)] > MAX_NODES), None)
            if inner is None:
                break
            node, path = inner[1], path if inner[0] is None else (*path, inner[0])
        raise self.fail(
            node,
            path,
            f"expands to {self.sizes[id(node)]:,} values (anchors and aliases repeated inside each other?); "
            f"a portal file never needs more than {MAX_NODES:,}",
        )

    def size(self, node: yaml.Node, path: Path_, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise YamlError(ConfigProblem(self.name, node.start_mark.line + 1, _nesting_text(path), _DEEP))
        known = self.sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in self.open:
            raise self.fail(node, path, "an alias inside its own anchor: it would expand without end")
        self.open.add(id(node))
        total = 1 + sum(
            self.size(child, path if step is None else (*path, step), depth + 1) for step, child in _children(node)
        )
        self.open.discard(id(node))
        self.sizes[id(node)] = total
        return total

    def fail(self, node: yaml.Node, path: Path_, message: str) -> YamlError:
        return YamlError(ConfigProblem(self.name, node.start_mark.line + 1, path_text(path), message))

    def node(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self.enter(node, path, depth)
        self.lines.setdefault(path, (self.name, node.start_mark.line + 1))
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.node(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        value = self.scalar(node, path)
        if not self.check_numbers:
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(node, path, f"{node.value} is not a number leadsync can use: write a finite number")
        if isinstance(value, float) and abs(value) > MAX_FLOAT:
            raise self.fail(node, path, f"{node.value} is too large: a number here stays within +-1e15")
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise self.fail(node, path, f"{str(node.value)[:40]} is too large: an integer here fits in 64 bits")
        return value

    def enter(self, node: yaml.Node, path: Path_, depth: int) -> None:
        # check_size has seen the whole graph; this keeps the recursion bounded should the two ever differ.
        if depth > MAX_DEPTH:
            raise YamlError(ConfigProblem(self.name, node.start_mark.line + 1, _nesting_text(path), _DEEP))

    def scalar(self, node: yaml.Node, path: Path_) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:  # e.g. a date 2026-13-01, an integer of 5,000 digits
            raise self.fail(node, path, f"{str(node.value)[:40]!r} is not a valid value: {exc}") from exc

    def mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> dict[Any, Any]:
        merged = self.merged(node, path, depth)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            line = key_node.start_mark.line + 1
            key = self.key(key_node, path)
            if key in out:
                raise YamlError(ConfigProblem(self.name, line, path_text((*path, key)), "duplicate key"))
            self.lines[(*path, key)] = (self.name, line)
            out[key] = self.node(value_node, (*path, key), depth + 1)
        return {**merged, **out}

    def merged(self, node: yaml.MappingNode, path: Path_, depth: int) -> dict[Any, Any]:
        """What the mapping's `<<` merge key brings in; its own keys are laid on top of it."""
        # In `<<: [*a, *b]` a overrides b. Merged mappings are built like any value, so they count towards the bounds.
        merged: dict[Any, Any] = {}
        merges = [(k, v) for k, v in node.value if k.tag == _MERGE]
        if len(merges) > 1:
            raise self.fail(merges[1][0], path, "duplicate merge key (<<); give one, with a list of mappings")
        for key_node, value_node in merges:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in reversed(sources):  # the earlier, the later its values and lines are laid on
                if not isinstance(source, yaml.MappingNode):
                    raise self.fail(key_node, path, "a merge key (<<) takes a mapping or a list of mappings")
                self.enter(source, path, depth + 1)
                merged.update(self.mapping(source, path, depth + 1))
        return merged

    def key(self, key_node: yaml.Node, path: Path_) -> str:
        if not isinstance(key_node, yaml.ScalarNode):
            raise self.fail(key_node, path, "keys must be plain text")
        key = self.scalar(key_node, path)
        if isinstance(key, bool):
            return str(key).lower()
        if isinstance(key, int | float) or key is None:
            return str(key)  # keys such as 1: in a map are values to match, i.e. text
        if not isinstance(key, str):
            raise self.fail(key_node, path, "keys must be plain text")
        return key


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
    """`o` (its lines `ol`, at path `op`) laid on `b` (`bl`, at `bp`); the result sits at `op`."""
    if isinstance(b, dict) and isinstance(o, dict):
        return _merge_mappings(b, bl, bp, o, ol, op)
    if isinstance(b, list) and isinstance(o, list):
        key = _list_key(b)
        # With a repeated id in the overriding list, it replaces the base list whole, so the
        # duplicate is reported instead of silently merged away.
        if key is not None and _list_key(o) == key and len({item[key] for item in o}) == len(o):
            return _merge_keyed_lists(key, b, bl, bp, o, ol, op)
    return o, _reroot(ol, op, op)


def _merge_mappings(
    b: dict[Any, Any], bl: Lines, bp: Path_, o: dict[Any, Any], ol: Lines, op: Path_
) -> tuple[Any, Lines]:
    out: dict[Any, Any] = {}
    lines: Lines = {op: ol.get(op) or bl[bp]} if (op in ol or bp in bl) else {}
    for key, value in b.items():
        if key in o:
            out[key], sub = _merge(value, bl, (*bp, key), o[key], ol, (*op, key))
        else:
            out[key], sub = value, _reroot(bl, (*bp, key), (*op, key))
        lines.update(sub)
    for key, value in o.items():
        if key not in b:
            out[key] = value
            lines.update(_reroot(ol, (*op, key), (*op, key)))
    return out, lines


def _merge_keyed_lists(
    key: str, b: list[Any], bl: Lines, bp: Path_, o: list[Any], ol: Lines, op: Path_
) -> tuple[Any, Lines]:
    """Items of `o` merge onto the base items with the same `key`, in the base's order; new ones go last."""
    over_by = {item[key]: i for i, item in enumerate(o)}
    merged: list[Any] = []
    lines: Lines = {op: ol[op]} if op in ol else {}
    for i, item in enumerate(b):
        j = over_by.pop(item[key], None)
        target = (*op, len(merged))
        if j is None:
            value, sub = item, _reroot(bl, (*bp, i), target)
        else:
            value, sub = _merge(item, bl, (*bp, i), o[j], ol, (*op, j))
            sub = _reroot(sub, (*op, j), target)
        merged.append(value)
        lines.update(sub)
    for j in sorted(over_by.values()):
        lines.update(_reroot(ol, (*op, j), (*op, len(merged))))
        merged.append(o[j])
    return merged, lines


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
