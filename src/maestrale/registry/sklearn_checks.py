"""Bounds checks of the node arrays inside a loaded scikit-learn model, before anyone calls predict.

skops checks *types*; it cannot check *content*. `sklearn.tree._tree.Tree`, HistGradientBoosting's
`TreePredictor` and the KD/Ball trees of the neighbour models store raw child and feature indices
that scikit-learn's Cython code follows without bounds checks: a crafted archive loads fine and then
segfaults (or loops forever) on the first prediction. Maestrale trusts these types only because
`check_model` below proves, after every skops load, that each such structure is a proper tree over
the model's own features.

>>> check_model(DecisionTreeRegressor().fit(X, y), "the artifact of demo:1")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maestrale.errors import UntrustedArtifact

_WALK_LIMIT = 2_000_000  # objects visited; a fitted forest of 1,000 trees is ~10,000


def check_model(model: Any, what: str) -> None:
    """Raise `UntrustedArtifact` naming `what` if any tree structure in `model` is malformed."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.neighbors import BallTree, KDTree
    from sklearn.tree._tree import Tree

    for item, owner in _walk(model, what):
        n_features = getattr(owner, "n_features_in_", None)
        if isinstance(item, Tree):
            _check_tree(item, n_features, what)
        elif isinstance(item, TreePredictor):
            _check_predictor(item, n_features, getattr(owner, "_bin_mapper", None), what)
        elif isinstance(item, KDTree | BallTree):
            _check_binary_tree(item, what)
        features = getattr(item, "estimators_features_", None)
        if features is not None:
            _check_feature_subsets(item, features, what)


def _walk(root: Any, what: str) -> Any:
    """Yield `(object, nearest enclosing estimator)` for everything reachable from `root`."""
    seen: set[int] = set()
    stack: list[tuple[Any, Any]] = [(root, None)]
    while stack:
        item, owner = stack.pop()
        if id(item) in seen or item is None or isinstance(item, str | bytes | int | float | complex):
            continue
        seen.add(id(item))
        if len(seen) > _WALK_LIMIT:
            raise UntrustedArtifact(f"{what} holds over {_WALK_LIMIT} objects; refusing it")
        if isinstance(item, np.ndarray):
            if item.dtype == object:
                stack.extend((x, owner) for x in item.ravel().tolist())
            continue
        if isinstance(item, list | tuple | set | frozenset):
            stack.extend((x, owner) for x in item)
            continue
        if isinstance(item, dict):
            stack.extend((x, owner) for x in (*item.keys(), *item.values()))
            continue
        yield item, owner
        state = getattr(item, "__dict__", None)
        if isinstance(state, dict):
            inner = item if "n_features_in_" in state else owner
            stack.extend((x, inner) for x in state.values())


def _fail(what: str, problem: str) -> UntrustedArtifact:
    return UntrustedArtifact(
        f"{what} is malformed: {problem}; a model fitted by scikit-learn never is, so the "
        "file was corrupted or crafted: re-register the model from its training run"
    )


def _check_children(left: np.ndarray, right: np.ndarray, n: int, what: str, kind: str) -> None:
    """Every node but the root has exactly one parent: traversal from the root ends at a leaf."""
    children = np.concatenate([left, right]).astype(np.int64)
    if children.size and (children.min() < 1 or children.max() >= n):
        raise _fail(what, f"a {kind} points at a node outside 1..{n - 1}")
    parents = np.bincount(children, minlength=n)
    if n and (parents[0] != 0 or np.any(parents[1:] != 1)):
        raise _fail(what, f"a {kind}'s nodes do not form a tree (a node has zero or several parents)")


def _check_features(features: np.ndarray, n_features: int, what: str, kind: str) -> None:
    if features.size and (features.min() < 0 or features.max() >= n_features):
        raise _fail(what, f"a {kind} splits on a feature outside 0..{n_features - 1}")


def _check_tree(tree: Any, n_features_in: int | None, what: str) -> None:
    state = tree.__getstate__()
    nodes, n = state["nodes"], int(state["node_count"])
    if n < 1 or len(nodes) != n or len(state["values"]) != n:
        raise _fail(what, f"a decision tree declares {n} nodes but stores {len(nodes)}")
    if n_features_in is not None and tree.n_features != n_features_in:
        raise _fail(what, f"a decision tree has {tree.n_features} features, its estimator {n_features_in}")
    left, right = nodes["left_child"], nodes["right_child"]
    leaf = left == -1
    if np.any(leaf != (right == -1)):
        raise _fail(what, "a decision-tree node has exactly one child")
    _check_children(left[~leaf], right[~leaf], n, what, "decision tree")
    _check_features(nodes["feature"][~leaf], int(tree.n_features), what, "decision tree")


def _check_predictor(pred: Any, n_features_in: int | None, bin_mapper: Any, what: str) -> None:
    nodes = pred.nodes
    n = len(nodes)
    if n < 1:
        raise _fail(what, "a histogram-gradient-boosting tree has no nodes")
    internal = ~nodes["is_leaf"].astype(bool)
    _check_children(nodes["left"][internal], nodes["right"][internal], n, what, "boosting tree")
    if n_features_in is None:
        raise _fail(what, "a TreePredictor outside a HistGradientBoosting estimator")
    _check_features(nodes["feature_idx"][internal], int(n_features_in), what, "boosting tree")
    categorical = nodes["is_categorical"][internal].astype(bool)
    if not categorical.any():
        return
    for bitsets in (pred.raw_left_cat_bitsets, pred.binned_left_cat_bitsets):
        if bitsets.ndim != 2 or bitsets.shape[1] != 8:
            raise _fail(what, "a boosting tree's category bitsets are not (n, 8)")
        if nodes["bitset_idx"][internal][categorical].max() >= len(bitsets):
            raise _fail(what, "a categorical split points past the category bitsets")
    is_cat = np.asarray(getattr(bin_mapper, "is_categorical_", np.zeros(0)), dtype=bool)
    if is_cat.size != n_features_in:
        raise _fail(what, "the categorical-feature mask does not match the number of features")
    if not is_cat[nodes["feature_idx"][internal][categorical]].all():
        raise _fail(what, "a categorical split on a feature the bin mapper calls numeric")
    for f in np.flatnonzero(is_cat):
        known = np.asarray(bin_mapper.bin_thresholds_[f], dtype=np.float64)
        if known.size and not (np.isfinite(known).all() and known.min() >= 0 and known.max() < 256):
            raise _fail(what, f"known categories of feature {f} fall outside 0..255")


def _check_binary_tree(tree: Any, what: str) -> None:
    data, idx, node_data, bounds, _leaf, n_levels, n_nodes, *_, metric, weights = tree.__getstate__()
    n_samples = len(data)
    if data.ndim != 2 or not 0 < n_levels < 64 or n_nodes != 2**n_levels - 1 or len(node_data) != n_nodes:
        raise _fail(what, "a neighbour tree's levels, node count and node table disagree")
    if len(idx) != n_samples or not np.array_equal(np.sort(idx), np.arange(n_samples)):
        raise _fail(what, "a neighbour tree's index array is not a permutation of its samples")
    start, end = node_data["idx_start"], node_data["idx_end"]
    if np.any(start < 0) or np.any(start > end) or np.any(end > n_samples):
        raise _fail(what, "a neighbour-tree node covers samples outside the data")
    internal = np.flatnonzero(node_data["is_leaf"] == 0)
    if internal.size and 2 * internal.max() + 2 >= n_nodes:
        raise _fail(what, "an inner neighbour-tree node has children past the node table")
    if bounds.ndim != 3 or bounds.shape[1:] != (n_nodes, data.shape[1]):
        raise _fail(what, "a neighbour tree's node bounds do not match its nodes and features")
    if weights is not None and len(weights) != n_samples:
        raise _fail(what, "a neighbour tree's sample weights do not match its samples")
    p, vec, _mat = metric.__getstate__()
    if not (np.isfinite(p) and p > 0) or vec.size not in (0, 1, data.shape[1]):
        raise _fail(what, "a distance metric's power or weights do not fit the tree's data")
    if type(metric).__name__.startswith("Minkowski"):
        metric._validate_data(data)  # refuses weights whose length differs from the features


def _check_feature_subsets(ensemble: Any, subsets: Any, what: str) -> None:
    """Bagging/IsolationForest feed each tree `X[:, subset]` (IsolationForest without re-checking)."""
    members = getattr(ensemble, "estimators_", None) or []
    if len(subsets) != len(members):
        raise _fail(what, "an ensemble has a different number of feature subsets and members")
    for subset, member in zip(subsets, members, strict=True):
        width = getattr(member, "n_features_in_", None)
        if width is not None and len(subset) != width:
            raise _fail(what, "an ensemble member was fitted on a different number of features")
