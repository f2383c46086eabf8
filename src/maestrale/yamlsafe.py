"""Bounded YAML: every YAML text Maestrale reads goes through here, with size, depth and expansion limits.

>>> load("defaults: &d {max_iter: 50}\\nmodel: {<<: *d, learning_rate: 0.1}\\n")
{'defaults': {'max_iter': 50}, 'model': {'max_iter': 50, 'learning_rate': 0.1}}
>>> load("a: &a [x, x, x]\\nb: &b [*a, *a, *a]\\nc: [*b, *b, *b]\\n", max_nodes=20)
Traceback (most recent call last):
maestrale.yamlsafe.YamlError: the YAML expands to more than 20 nodes (an anchor repeated through ...

`yaml.safe_load` builds no arbitrary objects, but an alias is a reference to an anchored node: 600
bytes of nested anchors ("billion laughs") compose into a small graph that expands to 10^6 nodes and
more once constructed or walked. Here the composed graph is measured before anything is built: the
expanded size and depth of each distinct node are computed once (memoised over shared alias
targets), so the check is linear in the text however large the expansion it refuses.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from maestrale.errors import InvalidInput

#: Largest YAML text read (a spec or a policy is a few KiB).
MAX_BYTES = 256 * 1024
#: Largest number of nodes a document may expand to, aliases counted at every use.
MAX_NODES = 100_000
#: Deepest nesting of mappings and sequences, aliases followed.
MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(InvalidInput):
    """YAML that is invalid or over a limit; `line` is 1-based when the problem has a place."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing nesting beyond `max_depth` while composing (its composer recurses)."""

    def __init__(self, text: str, max_depth: int) -> None:
        super().__init__(text)
        self._depth, self._max_depth = 0, max_depth

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > self._max_depth:
                raise _TooDeep(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_size(text: str, max_bytes: int) -> None:
    size = len(text.encode("utf-8", errors="replace")) if len(text) * 4 > max_bytes else len(text)
    if size > max_bytes:
        raise YamlError(
            f"the YAML text is {size:,} bytes, over the limit of {max_bytes:,} bytes: a spec or a policy "
            "is a few KiB; split it or remove what is not needed"
        )


def _syntax_error(exc: yaml.YAMLError, text: str = "") -> YamlError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    line = mark.line + 1 if mark else None
    lines = text.splitlines()
    source = lines[line - 1] if line and line <= len(lines) else ""
    above = next((x for x in reversed(lines[: line - 1]) if x.strip()), "") if line else ""
    return YamlError(f"not valid YAML ({problem}): {syntax_hint(source, str(problem), above)}", line)


_TEMPLATE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_KEY_VALUE = re.compile(r"^\s*[\w.-]+:\s+\S")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def syntax_hint(source: str, problem: str, above: str = "") -> str:
    """The likely fix for a YAML syntax error, from the offending line, the one above and the problem.

    >>> syntax_hint("data: {uri: data/{site}.parquet}", "expected ',' or '}', but got '{'")
    'a value holding a {template} must be quoted: write "data/{site}.parquet"'
    >>> syntax_hint("  target: x", "mapping values are not allowed here", above="name: pv")[:45]
    'this line is indented deeper than the line ab'
    """
    if source[: _indent(source)].count("\t") or "'\\t'" in problem:
        return "YAML indents with spaces, never tabs: replace the tab at the start of the line"
    template = _TEMPLATE.search(source)
    if template:
        value = _plain_around(source, template.start())
        return f'a value holding a {{template}} must be quoted: write "{value}"'
    if _KEY_VALUE.match(source) and _KEY_VALUE.match(above) and _indent(source) > _indent(above):
        return (
            "this line is indented deeper than the line above, which already has a value: "
            "start the keys of one mapping in the same column"
        )
    if "mapping values are not allowed" in problem:
        return "a value that contains ': ' must be quoted, e.g. description: \"note: hourly\""
    return (
        "check the indentation (spaces only; the keys of one mapping start in the same column) and "
        "quote values that contain ': ', '{' or '#'"
    )


def _plain_around(source: str, at: int) -> str:
    """The plain scalar of `source` holding the template that starts at `at`, as the user wrote it."""
    start = at
    while start > 0 and source[start - 1] not in ",[{: ":
        start -= 1
    end = at
    while end < len(source) and source[end] not in ",]}# ":
        template = _TEMPLATE.match(source, end)
        end = template.end() if template else end + 1
    return source[start:end]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_expansion(root: yaml.Node, *, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> int:
    """The number of nodes `root` expands to (aliases counted at every use); `YamlError` over a limit.

    Iterative and memoised by node identity: a node shared through aliases is measured once, so the
    cost is the size of the composed graph, not of its expansion. A recursive alias is refused.

    >>> check_expansion(yaml.compose("a: &a [x, x]\\nb: [*a, *a]"))  # root, 2 keys, [x, x], 2 × [x, x]
    13
    """
    return _measure(root, max_nodes, max_nodes, max_depth)


def _measure(root: yaml.Node, budget: int, max_nodes: int, max_depth: int) -> int:
    """`check_expansion` with `budget` nodes left of the stream's `max_nodes`."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, expanded depth)
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            entered.discard(key)
            nodes, depth = 1, 1
            for child in _children(node):
                child_nodes, child_depth = measured[id(child)]
                nodes, depth = nodes + child_nodes, max(depth, child_depth + 1)
            line = node.start_mark.line + 1
            if nodes > budget:
                raise YamlError(
                    f"the YAML expands to more than {max_nodes:,} nodes (an anchor repeated through nested "
                    "aliases counts at every use): write the values out, or use fewer levels of aliases",
                    line,
                )
            if depth > max_depth:
                raise YamlError(
                    f"the YAML nests deeper than {max_depth} levels once its aliases are followed: "
                    "flatten it",
                    line,
                )
            measured[key] = (nodes, depth)
            continue
        if key in measured:
            continue
        if key in entered:
            raise YamlError("the YAML has an alias inside its own anchor (a recursive structure): remove it")
        entered.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in measured)
    return measured[id(root)][0]


def compose_all(
    text: str, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH
) -> list[yaml.Node]:
    """The node graph of each document of `text`, checked against the limits (nothing constructed yet).

    `max_nodes` bounds the whole stream: many small documents cost as much as one large one.
    """
    if not isinstance(text, str):
        raise YamlError(f"YAML must be text, not {type(text).__name__}")
    _check_size(text, max_bytes)
    try:
        loader = _BoundedLoader(text, max_depth)  # the reader refuses control characters right here
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text) from None
    nodes: list[yaml.Node] = []
    total = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # check_node said there is one; None only past the end of the stream
                break
            total += _measure(node, max_nodes - total, max_nodes, max_depth)
            nodes.append(node)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text) from None
    except _TooDeep as exc:
        raise YamlError(f"the YAML nests deeper than {max_depth} levels: flatten it", exc.line) from None
    finally:
        loader.dispose()
    return nodes


def compose(
    text: str, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH
) -> yaml.Node | None:
    """The node graph of a single-document `text` (None when empty), checked against the limits."""
    nodes = compose_all(text, max_bytes=max_bytes, max_nodes=max_nodes, max_depth=max_depth)
    if len(nodes) > 1:
        raise YamlError(
            "the YAML holds several documents (separated by ---): give one", nodes[1].start_mark.line + 1
        )
    return nodes[0] if nodes else None


def construct(node: yaml.Node | None) -> Any:
    """Plain Python data (dict, list, str, int, float, bool, None, date) from a checked node graph."""
    if node is None:
        return None
    constructor = yaml.SafeLoader("")
    try:
        return constructor.construct_document(node)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc) from None
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. an unhashable key, a timestamp out of range
        line = node.start_mark.line + 1
        raise YamlError(f"the YAML has a value that cannot be read ({exc})", line) from None
    finally:
        constructor.dispose()


def load(
    text: str, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH
) -> Any:
    """`yaml.safe_load` within the limits; `YamlError` (an `InvalidInput`) names the limit or the error.

    >>> load("name: pv\\nconditions: [{metric: nmae}]")
    {'name': 'pv', 'conditions': [{'metric': 'nmae'}]}
    """
    return construct(compose(text, max_bytes=max_bytes, max_nodes=max_nodes, max_depth=max_depth))


def load_all(
    text: str, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH
) -> list[Any]:
    """`yaml.safe_load_all` within the limits, as a list (empty documents included, as None)."""
    nodes = compose_all(text, max_bytes=max_bytes, max_nodes=max_nodes, max_depth=max_depth)
    return [construct(node) for node in nodes]


def read_text(path: str | Path, *, max_bytes: int = MAX_BYTES) -> str:
    """The text of a local YAML file, reading at most `max_bytes` (a huge file is refused, not loaded)."""
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise YamlError(
            f"{str(path)!r} is over the limit of {max_bytes:,} bytes for a YAML file: split it or remove "
            "what is not needed"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"{str(path)!r} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None


def check_data(value: Any, *, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> None:
    """Apply the node and depth limits to plain data (a JSON body): `YamlError` names the limit.

    >>> check_data({"params": [[[1]]]}, max_depth=3)
    Traceback (most recent call last):
    maestrale.yamlsafe.YamlError: the data nests deeper than 3 levels: flatten it
    """
    count = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > max_nodes:
            raise YamlError(f"the data has more than {max_nodes:,} values: send less")
        if depth > max_depth:
            raise YamlError(f"the data nests deeper than {max_depth} levels: flatten it")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for pair in item.items() for v in pair)
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)


__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "YamlError",
    "check_data",
    "check_expansion",
    "compose",
    "compose_all",
    "construct",
    "load",
    "load_all",
    "read_text",
]
