"""Builders of hostile artifacts, made from real models at test time (no binary blobs in the repo).

Each builder returns bytes an attacker with a write token (or write access to the object store)
could plant: skops archives whose `schema.json` rebuilds code-running callables, a pickle with a
`__reduce__`, ONNX models reading files outside the artifact, LightGBM/XGBoost files truncated or
with inflated counts, and scikit-learn trees whose node arrays point out of bounds.

>>> data = skops_with(reduce_node("builtins", "exec", [json_node("print(1)")]))  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

Node = dict[str, Any]


# -- skops schema nodes -----------------------------------------------------------------------------
def json_node(value: Any) -> Node:
    """A primitive, as skops writes `alpha=2.0` or `"auto"`."""
    return {"__class__": type(value).__name__, "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(value), "is_json": True}  # fmt: skip


def tuple_node(items: list[Node]) -> Node:
    return {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": items}


def list_node(items: list[Node]) -> Node:
    return {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": items}


def reduce_node(module: str, name: str, args: list[Node]) -> Node:
    """`module.name(*args)` at load time: skops' ConstructorFromReduceNode."""
    return {"__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode",
            "content": tuple_node(args)}  # fmt: skip


def function_node(module: str, name: str) -> Node:
    """A reference to the function `module.name` (what a `score_func=` hyper-parameter holds)."""
    return {"__class__": name, "__module__": module, "__loader__": "FunctionNode"}


def partial_node(func: Node, args: list[Node]) -> Node:
    """`functools.partial(func, *args)`."""
    kwds = {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {},
            "key_types": list_node([])}  # fmt: skip
    content = {"func": func, "args": tuple_node(args), "kwds": kwds, "namespace": json_node(None)}
    return {
        "__class__": "partial",
        "__module__": "functools",
        "__loader__": "PartialNode",
        "content": content,
    }


def object_node(module: str, name: str) -> Node:
    """An instance of `module.name` rebuilt from an (empty) state: skops' ObjectNode."""
    state = {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {},
             "key_types": list_node([])}  # fmt: skip
    return {"__class__": name, "__module__": module, "__loader__": "ObjectNode", "content": state}


def method_node(obj: Node, method: str) -> Node:
    """The bound method `obj.<method>`: skops' MethodNode."""
    return {"__class__": obj["__class__"], "__module__": obj["__module__"], "__loader__": "MethodNode",
            "content": {"obj": obj, "func": method}}  # fmt: skip


def operator_node(name: str, args: list[str]) -> Node:
    """`operator.methodcaller(*args)` / `operator.attrgetter(*args)`: skops' OperatorFuncNode."""
    return {"__class__": name, "__module__": "operator", "__loader__": "OperatorFuncNode",
            "attrs": tuple_node([json_node(a) for a in args])}  # fmt: skip


def ridge_archive() -> bytes:
    """A real, fitted Ridge as skops dumps it."""
    import skops.io as sio
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    return sio.dumps(Ridge(alpha=2.0).fit(rng.normal(size=(20, 3)), rng.normal(size=20)))


def skops_with(payload: Node, attribute: str = "alpha") -> bytes:
    """A real Ridge archive whose `attribute` is replaced by `payload` in `schema.json`."""
    source = zipfile.ZipFile(io.BytesIO(ridge_archive()))
    schema = json.loads(source.read("schema.json"))
    schema["content"]["content"][attribute] = payload
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dest:
        for name in source.namelist():
            dest.writestr(name, json.dumps(schema) if name == "schema.json" else source.read(name))
    return out.getvalue()


def skops_payloads(canary: str) -> dict[str, Node]:
    """Every skops route to code execution we know of; each would create `canary` if it ran."""
    touch = ["touch", canary]
    code = f"open({canary!r}, 'w').write('pwned')"
    import_os = reduce_node("builtins", "__import__", [json_node("os")])
    return {
        "exec": reduce_node("builtins", "exec", [json_node(code)]),
        "eval": reduce_node("builtins", "eval", [json_node(f"__import__('os').system('touch {canary}')")]),
        "getattr-chain": reduce_node("builtins", "getattr", [import_os, json_node("system")]),
        "__import__": import_os,
        "os.system": reduce_node("os", "system", [json_node(f"touch {canary}")]),
        "posix.system": reduce_node("posix", "system", [json_node(f"touch {canary}")]),
        "subprocess.Popen": reduce_node("subprocess", "Popen", [list_node([json_node(a) for a in touch])]),
        "subprocess.check_output": reduce_node(
            "subprocess", "check_output", [list_node([json_node(a) for a in touch])]
        ),
        "partial(os.system)": partial_node(function_node("os", "system"), [json_node(f"touch {canary}")]),
        "partial(exec)": partial_node(function_node("builtins", "exec"), [json_node(code)]),
        "function os.system": function_node("os", "system"),
        "object subprocess.Popen": object_node("subprocess", "Popen"),
        "method __reduce__": method_node(object_node("sklearn.linear_model._ridge", "Ridge"), "__reduce__"),
        "operator.methodcaller": operator_node("methodcaller", ["system", f"touch {canary}"]),
        "operator.attrgetter": operator_node("attrgetter", ["system"]),
    }


# -- pickle, ONNX ---------------------------------------------------------------------------------
class _Reduce:
    def __init__(self, canary: str) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return os.system, (f"touch {self.canary}",)


def pickle_payload(canary: str) -> bytes:
    """A pickle that runs `touch canary` when loaded."""
    return pickle.dumps(_Reduce(canary), protocol=pickle.HIGHEST_PROTOCOL)


def onnx_external(location: str) -> bytes:
    """A valid ONNX graph `Y = X + W` whose initializer W is read from the file `location`."""
    from onnx import TensorProto, helper

    weight = helper.make_tensor("W", TensorProto.FLOAT, [4], [0.0] * 4)
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "external",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


# -- LightGBM, XGBoost ----------------------------------------------------------------------------
def lightgbm_text(n_trees: int = 10) -> str:
    import lightgbm

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    data = lightgbm.Dataset(X, X[:, 0] + rng.normal(size=200))
    return lightgbm.train({"verbose": -1, "num_leaves": 8}, data, n_trees).model_to_string()


def lightgbm_variants() -> dict[str, bytes]:
    """Truncated and inflated LightGBM files; each crashed, hung or failed natively when measured."""
    text = lightgbm_text()
    out = {
        f"truncated at {f:.0%}": text[: int(len(text) * f)].encode() for f in (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
    }

    def sub(pattern: str, repl: str) -> bytes:
        return re.sub(pattern, repl, text, count=1, flags=re.M).encode()

    out |= {
        "num_leaves inflated": sub(r"^num_leaves=\d+", "num_leaves=100000000"),
        "num_class inflated": sub(r"^num_class=\d+", "num_class=1000000000"),
        "tree_sizes inflated": sub(r"^tree_sizes=\d+", "tree_sizes=99999999999"),
        "num_tree_per_iteration inflated": sub(
            r"^num_tree_per_iteration=\d+", "num_tree_per_iteration=1000000"
        ),
        "left_child out of range": sub(r"^left_child=-?\d+", "left_child=1000000"),
        "left_child cycle": sub(r"^left_child=-?\d+", "left_child=0"),
        "split_feature out of range": sub(r"^split_feature=\d+", "split_feature=1000000"),
    }
    return out


def xgboost_model() -> tuple[bytes, dict[str, Any]]:
    """A small XGBRegressor as UBJSON bytes, and the same model as a JSON document."""
    import tempfile

    import xgboost

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    model = xgboost.XGBRegressor(n_estimators=5, max_depth=3).fit(X, X[:, 0])
    with tempfile.TemporaryDirectory() as tmp:
        model.save_model(f"{tmp}/m.ubj")
        model.save_model(f"{tmp}/m.json")
        with open(f"{tmp}/m.ubj", "rb") as fh, open(f"{tmp}/m.json") as js:
            return fh.read(), json.load(js)


def xgboost_variants() -> dict[str, bytes]:
    """Truncated UBJSON and JSON models with out-of-range indices or inflated counts."""
    ubj, doc = xgboost_model()
    out = {f"ubjson truncated at {f:.0%}": ubj[: int(len(ubj) * f)] for f in (0.1, 0.5, 0.9, 0.99)}

    def edit(change: Callable[[dict[str, Any]], None]) -> bytes:
        copy = json.loads(json.dumps(doc))
        change(copy)
        return json.dumps(copy).encode()

    def tree(d: dict[str, Any]) -> dict[str, Any]:
        return d["learner"]["gradient_booster"]["model"]["trees"][0]

    params = lambda d: d["learner"]["learner_model_param"]  # noqa: E731
    out |= {
        "left_children out of range": edit(lambda d: tree(d)["left_children"].__setitem__(0, 10**8)),
        "left_children cycle": edit(lambda d: tree(d)["left_children"].__setitem__(0, 0)),
        "split_indices out of range": edit(lambda d: tree(d)["split_indices"].__setitem__(0, 10**8)),
        "parents out of range": edit(lambda d: tree(d)["parents"].__setitem__(1, 10**8)),
        "num_class inflated": edit(lambda d: params(d).__setitem__("num_class", "2000000000")),
        "num_nodes inflated": edit(lambda d: tree(d)["tree_param"].__setitem__("num_nodes", "2000000000")),
    }
    return out


# -- scikit-learn trees with out-of-bounds node arrays -----------------------------------------------
def tampered_tree(field: str, value: int) -> bytes:
    """A DecisionTreeRegressor whose root's `field` is `value`, dumped with skops (loads, then segfaults)."""
    import skops.io as sio
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    model = DecisionTreeRegressor(max_depth=3).fit(X, X[:, 0])
    state = model.tree_.__getstate__()
    state["nodes"][field][0] = value
    model.tree_.__setstate__(state)
    return sio.dumps(model)


def tampered_hgb(field: str, value: int) -> bytes:
    """A HistGradientBoostingRegressor whose first tree's root `field` is `value`."""
    import skops.io as sio
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    model = HistGradientBoostingRegressor(max_iter=3).fit(X, X[:, 0])
    model._predictors[0][0].nodes[field][0] = value
    return sio.dumps(model)


def tampered_kdtree() -> bytes:
    """A KNeighborsRegressor whose KD-tree index array points past its samples."""
    import skops.io as sio
    from sklearn.neighbors import KNeighborsRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    model = KNeighborsRegressor(algorithm="kd_tree").fit(X, X[:, 0])
    state = list(model._tree.__getstate__())
    state[1] = state[1].copy()
    state[1][0] = 10**9
    model._tree.__setstate__(tuple(state))
    return sio.dumps(model)
