"""Structural checks of LightGBM, XGBoost and ONNX model bytes, run before native code parses them.

Both parsers trust their input. Measured with lightgbm 4.7 and xgboost 3.2 on mutated real models
(`tests/hostile.py`): LightGBM aborts the process (`std::terminate` from an OpenMP region) or
segfaults on a file truncated anywhere past its header, on `tree_sizes` that do not match the tree
blocks, and loops forever on a child index pointing back at its parent; XGBoost segfaults on child,
parent or feature indices out of range and allocates without bound on a huge `num_class`. These
checks re-read the structure in Python with every count bounded by the input size, and refuse what
a library-written model never contains, so the native code only sees well-formed trees. ONNX
models must be self-contained: a tensor's external-data path could name any file on the server.

>>> check_lightgbm(booster.model_to_string().encode(), "demo:1")  # doctest: +SKIP
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from maestrale.errors import UntrustedArtifact
from maestrale.registry.ubjson import UBJSONError, decode, decode_json_strict

MAX_CLASSES = 100_000  # outputs per iteration; memory at predict time grows with it
MAX_FEATURES = 10_000_000
MAX_LEAVES = 1 << 20  # LightGBM caps num_leaves at 131072; leave room, never trust it blindly
_ROOT_PARENT = 2147483647  # XGBoost's marker for "no parent"


def _fail(what: str, fmt: str, problem: str) -> UntrustedArtifact:
    return UntrustedArtifact(
        f"{what} is a malformed {fmt} model: {problem}; {fmt} itself never writes this, so the "
        "file was truncated, corrupted or crafted: re-register the model from its training run"
    )


_INT = r"-?\d{1,10}"
_FLOAT = r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf|nan)"
_PATTERNS = {kind: re.compile(rf"(?:{tok}(?: +{tok})*)?") for kind, tok in (("int", _INT), ("float", _FLOAT))}


def _ints(text: str, what: str, fmt: str, field: str) -> np.ndarray:
    """Space-separated integers, each written as LightGBM writes them (no `1_0`, `+5`, overflow)."""
    text = text.strip()
    if not _PATTERNS["int"].fullmatch(text):
        raise _fail(what, fmt, f"{field} holds a value that is not a 32-bit integer")
    values = np.array(text.split(), dtype=np.int64)
    if values.size and (values.min() < -(2**31) or values.max() >= 2**32):
        raise _fail(what, fmt, f"{field} holds a value outside 32 bits")
    return values


def _floats(text: str, what: str, fmt: str, field: str) -> int:
    """How many numbers `text` holds, after checking each is a plain decimal number."""
    text = text.strip()
    if not _PATTERNS["float"].fullmatch(text):
        raise _fail(what, fmt, f"{field} holds a value that is not a number")
    return len(text.split())


def _check_tree_links(left: np.ndarray, right: np.ndarray, n: int, what: str, fmt: str) -> None:
    """Children of internal nodes lie in 1..n-1 and no node has two parents: walks end at a leaf."""
    children = np.concatenate([left, right]).astype(np.int64)
    if children.size and (children.min() < 1 or children.max() >= n):
        raise _fail(what, fmt, f"a tree points at a node outside 1..{n - 1}")
    if np.any(np.bincount(children, minlength=n) > 1):
        raise _fail(what, fmt, "a tree node has two parents (a cycle or a shared subtree)")


# -- LightGBM -------------------------------------------------------------------------------------
_LGB_FLOATS = ("threshold", "split_gain", "leaf_value", "leaf_weight", "internal_value", "internal_weight")


def check_lightgbm(data: bytes, what: str) -> None:
    """Refuse LightGBM model text that LightGBM's parser could crash or hang on."""
    fmt = "lightgbm"
    start = data.find(b"\nTree=0\n") + 1
    if not data.startswith(b"tree\n") or start <= 0:
        raise _fail(what, fmt, "no 'tree' header followed by 'Tree=0'")
    header = _key_values(data[:start], what)
    need = ("num_class", "num_tree_per_iteration", "max_feature_idx", "feature_names", "tree_sizes")
    if missing := [k for k in need if k not in header]:
        raise _fail(what, fmt, f"header lacks {', '.join(missing)}")
    num_class = _bounded(header["num_class"], 1, MAX_CLASSES, "num_class", what)
    per_iter = _bounded(header["num_tree_per_iteration"], 1, MAX_CLASSES, "num_tree_per_iteration", what)
    n_features = _bounded(header["max_feature_idx"], 0, MAX_FEATURES - 1, "max_feature_idx", what) + 1
    if len(header["feature_names"].split()) != n_features:
        raise _fail(what, fmt, f"feature_names does not list {n_features} features")
    for token in header.get("objective", "").split()[1:]:
        key, _, value = token.partition(":")
        if key == "num_class" and value != str(num_class):
            raise _fail(what, fmt, "the objective's num_class differs from the header's")
    sizes = _ints(header["tree_sizes"], what, fmt, "tree_sizes")
    if sizes.size == 0 or sizes.size % per_iter or sizes.min() < 1 or sizes.sum() > len(data) - start:
        raise _fail(what, fmt, "tree_sizes does not describe the tree blocks that follow")
    pos = start
    for k, size in enumerate(sizes.tolist()):
        block = data[pos : pos + size]
        if not block.startswith(f"Tree={k}\n".encode()):
            raise _fail(what, fmt, f"tree {k} does not start where tree_sizes says")
        _check_lightgbm_tree(_key_values(block, what), n_features, what, k)
        pos += size
    if not data[pos:].startswith(b"end of trees"):
        raise _fail(what, fmt, "'end of trees' does not follow the last tree (truncated?)")
    _check_lightgbm_parameters(data[pos:], what)


_PARAMETER = re.compile(rb"\[[A-Za-z0-9_]+: [^\]\n]*\]")


def _check_lightgbm_parameters(tail: bytes, what: str) -> None:
    """The `parameters:` section: LightGBM segfaults on one cut inside a `[key: value]` line."""
    start = tail.find(b"\nparameters:\n")
    if start < 0:
        return
    end = tail.find(b"\nend of parameters", start)
    if end < 0:
        raise _fail(what, "lightgbm", "the parameters section has no 'end of parameters' (truncated?)")
    for line in tail[start + len(b"\nparameters:\n") : end].splitlines():
        if line and not _PARAMETER.fullmatch(line):
            raise _fail(what, "lightgbm", f"parameter line {line[:40]!r} is not '[key: value]'")


def _key_values(block: bytes, what: str) -> dict[str, str]:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(what, "lightgbm", "the model text is not UTF-8") from None
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            if key.strip() in out:  # which copy would the native parser use? refuse to guess
                raise _fail(what, "lightgbm", f"the field {key.strip()[:40]!r} appears twice")
            out[key.strip()] = value.strip()
    return out


def _bounded(value: str, low: int, high: int, field: str, what: str) -> int:
    if not re.fullmatch(_INT, value):
        raise _fail(what, "lightgbm", f"{field}={value[:40]!r} is not an integer")
    number = int(value)
    if not low <= number <= high:
        raise _fail(what, "lightgbm", f"{field}={number} is outside {low}..{high}")
    return number


def _check_lightgbm_tree(tree: dict[str, str], n_features: int, what: str, k: int) -> None:
    fmt, where = "lightgbm", f"tree {k}"
    leaves = _bounded(tree.get("num_leaves", ""), 1, MAX_LEAVES, f"{where} num_leaves", what)
    n_cat = _bounded(tree.get("num_cat", "0"), 0, MAX_LEAVES, f"{where} num_cat", what)
    arrays = {
        f: _ints(tree.get(f, ""), what, fmt, f"{where} {f}")
        for f in ("split_feature", "decision_type", "left_child", "right_child")
    }
    # every field LightGBM reads must hold exactly its count, or its parser throws inside OpenMP
    counts = {f: len(v) for f, v in arrays.items()}
    for f in _LGB_FLOATS:
        if f in tree or f in ("threshold", "leaf_value"):
            counts[f] = _floats(tree.get(f, ""), what, fmt, f"{where} {f}")
    for f in ("leaf_count", "internal_count"):
        if f in tree:
            counts[f] = len(_ints(tree[f], what, fmt, f"{where} {f}"))
    for field, got in counts.items():
        n = leaves if field.startswith("leaf_") else leaves - 1
        # a one-leaf tree is read from leaf_value alone; LightGBM leaves the other fields empty
        if got != n and (leaves > 1 or field == "leaf_value"):
            raise _fail(what, fmt, f"{where} has {got} {field} values for {leaves} leaves")
    if _floats(tree.get("shrinkage", "1"), what, fmt, f"{where} shrinkage") != 1:
        raise _fail(what, fmt, f"{where} shrinkage is not one number")
    threshold = tree.get("threshold", "").split()
    left, right = arrays["left_child"], arrays["right_child"]
    # LightGBM encodes a leaf child as ~leaf (negative); map leaves after the internal nodes
    inner = leaves - 1
    as_node = lambda c: np.where(c >= 0, c, inner + ~c)  # noqa: E731 - a one-line index mapping
    links = np.concatenate([left, right])
    if links.size and (links.min() < -leaves or links.max() >= inner):
        raise _fail(what, fmt, f"{where} points at a node or leaf past its {leaves} leaves")
    if leaves > 1:
        _check_tree_links(as_node(left), as_node(right), inner + leaves, what, fmt)
        if np.bincount(as_node(links), minlength=inner + leaves)[1:].min() != 1:
            raise _fail(what, fmt, f"{where} has a node no split leads to")
    features = arrays["split_feature"]
    if features.size and (features.min() < 0 or features.max() >= n_features):
        raise _fail(what, fmt, f"{where} splits on a feature outside 0..{n_features - 1}")
    decision = arrays["decision_type"]
    if decision.size and (decision.min() < 0 or decision.max() > 127):
        raise _fail(what, fmt, f"{where} has a decision_type outside 0..127")
    categorical = (decision & 1).astype(bool)
    if categorical.any() or n_cat:
        _check_lightgbm_categories(tree, threshold, categorical, n_cat, what, where)
    if tree.get("is_linear", "0") not in ("0", ""):
        per_leaf = _ints(tree.get("num_features", ""), what, fmt, f"{where} num_features")
        used = _ints(tree.get("leaf_features", ""), what, fmt, f"{where} leaf_features")
        n_coeff = _floats(tree.get("leaf_coeff", ""), what, fmt, f"{where} leaf_coeff")
        n_const = _floats(tree.get("leaf_const", ""), what, fmt, f"{where} leaf_const")
        if len(per_leaf) != leaves or n_const != leaves or per_leaf.min(initial=0) < 0:
            raise _fail(what, fmt, f"{where} linear leaves do not match its {leaves} leaves")
        if per_leaf.sum() != used.size or used.size != n_coeff:
            raise _fail(what, fmt, f"{where} linear-leaf feature counts do not match the features")
        if used.size and (used.min() < 0 or used.max() >= n_features):
            raise _fail(what, fmt, f"{where} has a linear leaf on a feature outside 0..{n_features - 1}")


def _check_lightgbm_categories(
    tree: dict[str, str], threshold: list[str], categorical: np.ndarray, n_cat: int, what: str, where: str
) -> None:
    fmt = "lightgbm"
    bounds = _ints(tree.get("cat_boundaries", ""), what, fmt, f"{where} cat_boundaries")
    values = _ints(tree.get("cat_threshold", ""), what, fmt, f"{where} cat_threshold")
    if len(bounds) != n_cat + 1 or bounds[0] != 0 or np.any(np.diff(bounds) < 0) or bounds[-1] != len(values):
        raise _fail(what, fmt, f"{where} cat_boundaries do not index its {len(values)} cat_threshold words")
    try:
        slots = np.array([float(t) for t, c in zip(threshold, categorical, strict=True) if c])
    except ValueError:
        raise _fail(what, fmt, f"{where} has a threshold that is not a number") from None
    if slots.size and (np.any(slots != np.floor(slots)) or slots.min() < 0 or slots.max() >= n_cat):
        raise _fail(what, fmt, f"{where} has a categorical split outside its {n_cat} category sets")


# -- XGBoost --------------------------------------------------------------------------------------
def check_xgboost(data: bytes, what: str) -> dict[str, Any]:
    """Refuse XGBoost JSON/UBJSON that XGBoost could crash on; returns the decoded document."""
    fmt = "xgboost"
    try:
        if data[:2] == b'{"':  # how XGBoost itself tells JSON from UBJSON
            doc = decode_json_strict(data)
        elif data[:1] == b"{" and data[1:2].isalpha():
            doc = decode(data)
        else:
            raise _fail(what, fmt, "neither a JSON nor a UBJSON model (legacy binary is not accepted)")
        learner = doc["learner"]
        param = learner["learner_model_param"]
        n_features = _xgb_int(param, "num_feature", 1, MAX_FEATURES, what)
        outputs = max(
            _xgb_int(param, "num_class", 0, MAX_CLASSES, what),
            _xgb_int(param, "num_target", 1, MAX_CLASSES, what) if "num_target" in param else 1,
        )
        booster = learner["gradient_booster"]
        name = booster["name"]
        if name == "gblinear":
            weights = np.asarray(booster["model"]["weights"])
            if weights.ndim != 1 or weights.size % (n_features + 1):
                raise _fail(what, fmt, "linear weights do not match num_feature")
            return doc
        if name not in ("gbtree", "dart"):
            raise _fail(what, fmt, f"unknown booster {str(name)[:40]!r}")
        model = booster["model"] if name == "gbtree" else booster["gbtree"]["model"]
        _check_xgb_forest(model, n_features, outputs, what)
    except (UBJSONError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise _fail(what, fmt, f"unexpected structure ({type(exc).__name__}: {str(exc)[:120]})") from None
    return doc


def _xgb_int(obj: dict[str, Any], key: str, low: int, high: int, what: str) -> int:
    value = int(str(obj[key]))
    if not low <= value <= high:
        raise _fail(what, "xgboost", f"{key}={value} is outside {low}..{high}")
    return value


def _check_xgb_forest(model: dict[str, Any], n_features: int, outputs: int, what: str) -> None:
    fmt = "xgboost"
    trees = model["trees"]
    n_trees = _xgb_int(model["gbtree_model_param"], "num_trees", 0, len(trees), what)
    info = np.asarray(model["tree_info"], dtype=np.int64)
    if (
        n_trees != len(trees)
        or info.shape != (n_trees,)
        or (n_trees and (info.min() < 0 or info.max() >= outputs))
    ):
        raise _fail(what, fmt, "num_trees, tree_info and the trees disagree")
    indptr = np.asarray(model.get("iteration_indptr", [0, n_trees]), dtype=np.int64)
    if indptr.size < 1 or indptr[0] != 0 or indptr[-1] != n_trees or np.any(np.diff(indptr) < 0):
        raise _fail(what, fmt, "iteration_indptr does not partition the trees")
    for k, tree in enumerate(trees):
        _check_xgb_tree(tree, n_features, what, k)


def _check_xgb_tree(tree: dict[str, Any], n_features: int, what: str, k: int) -> None:
    fmt, where = "xgboost", f"tree {k}"
    n = _xgb_int(tree["tree_param"], "num_nodes", 1, MAX_LEAVES * 2, what)
    arrays = {
        f: np.asarray(tree[f], dtype=np.int64)
        for f in ("left_children", "right_children", "parents", "split_indices", "default_left", "split_type")
        if f in tree or f != "split_type"
    }
    for f in ("split_conditions", "base_weights", "loss_changes", "sum_hessian"):
        if f in tree and len(tree[f]) % n:
            raise _fail(what, fmt, f"{where} {f} does not have one entry per node")
    if any(a.shape != (n,) for a in arrays.values()):
        raise _fail(what, fmt, f"{where} arrays do not all have num_nodes={n} entries")
    left, right, parents = arrays["left_children"], arrays["right_children"], arrays["parents"]
    leaf = left == -1
    per_leaf = _xgb_int(tree["tree_param"], "size_leaf_vector", 0, MAX_CLASSES, what)
    if per_leaf > 1:  # multi-output trees: a leaf's right child is its row in leaf_weights
        rows = len(tree.get("leaf_weights", [])) // per_leaf
        if leaf.any() and (right[leaf].min() < 0 or right[leaf].max() >= rows):
            raise _fail(what, fmt, f"{where} has a leaf outside its {rows} leaf-weight rows")
    elif np.any(leaf != (right == -1)):
        raise _fail(what, fmt, f"{where} has a node with exactly one child")
    _check_tree_links(left[~leaf], right[~leaf], n, what, fmt)
    inner = np.flatnonzero(~leaf)
    if (
        parents[0] not in (_ROOT_PARENT, -1)
        or np.any(parents[left[inner]] != inner)
        or np.any(parents[right[inner]] != inner)
    ):
        raise _fail(what, fmt, f"{where} parents do not match its children")
    if np.any((parents[1:] != _ROOT_PARENT) & ((parents[1:] < 0) | (parents[1:] >= n))):
        raise _fail(what, fmt, f"{where} has a parent index outside the tree")
    features = arrays["split_indices"][inner]
    if features.size and (features.min() < 0 or features.max() >= n_features):
        raise _fail(what, fmt, f"{where} splits on a feature outside 0..{n_features - 1}")
    _check_xgb_categories(tree, n, what, where)


def _check_xgb_categories(tree: dict[str, Any], n: int, what: str, where: str) -> None:
    nodes = np.asarray(tree.get("categories_nodes", []), dtype=np.int64)
    seg = np.asarray(tree.get("categories_segments", []), dtype=np.int64)
    size = np.asarray(tree.get("categories_sizes", []), dtype=np.int64)
    total = len(tree.get("categories", []))
    if not (len(nodes) == len(seg) == len(size)):
        raise _fail(what, "xgboost", f"{where} category tables have different lengths")
    if nodes.size and (
        nodes.min() < 0 or nodes.max() >= n or seg.min() < 0 or size.min() < 0 or (seg + size).max() > total
    ):
        raise _fail(what, "xgboost", f"{where} category tables point outside the categories")


# -- ONNX -----------------------------------------------------------------------------------------
def check_onnx(data: bytes, what: str) -> Any:
    """Parse an ONNX model and refuse external data (a path could read any file); returns it."""
    import onnx

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError
        raise UntrustedArtifact(f"{what} is not an ONNX model ({exc})") from None
    graphs = [model.graph, *(f for f in model.functions)]
    while graphs:
        graph = graphs.pop()
        tensors = [
            *getattr(graph, "initializer", ()),
            *(s.values for s in getattr(graph, "sparse_initializer", ())),
        ]
        for node in graph.node:
            for attr in node.attribute:
                tensors.extend(
                    [
                        attr.t,
                        *attr.tensors,
                        attr.sparse_tensor.values,
                        *(s.values for s in attr.sparse_tensors),
                    ]
                )
                graphs.extend([attr.g, *attr.graphs])
        for t in tensors:
            if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
                where = next((e.value for e in t.external_data if e.key == "location"), "?")
                raise UntrustedArtifact(
                    f"{what} is an ONNX model whose tensor {t.name!r} reads external file {where!r}; "
                    "Maestrale stores self-contained models only: save it with "
                    "onnx.save_model(..., save_as_external_data=False)"
                )
    return model
