"""Which types a skops archive may rebuild: skops' defaults, an audited allowlist, never a module prefix.

A skops archive names every type it needs; loading builds them. Trusting a *module* (`builtins.*`,
`numpy.*`) trusts `builtins.exec` and `numpy.load` too, so Maestrale trusts exact names only:

1. what skops trusts by default (estimators of `sklearn.utils.all_estimators`, ufuncs, dtypes, …);
2. `CURATED_TYPES` below: the extra names fitted scikit-learn models need, each reviewed;
3. `MAESTRALE_TYPES`: Maestrale's own classes (the feature pipeline's steps; add reviewed names there);
4. the caller's `trusted_types=[...]`, except anything `is_denied` — only `trusted=True` bypasses that.

>>> is_trusted("sklearn.tree._tree.Tree")
True
>>> is_trusted("builtins.exec", extra=["builtins.exec"])
False
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

# Node-array structures: they hold raw indices that scikit-learn's Cython code follows without
# bounds checks, so a crafted file could crash the process at predict time. They are trusted only
# together with the structural checks of `maestrale.registry.sklearn_checks`, run on every load.
_TREE_STRUCTURES = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
)

# Distance metrics of the neighbour trees: no state but `p` and a weight vector, both checked
# against the tree's data in `sklearn_checks` (Mahalanobis/SEuclidean carry matrices: not listed).
_DISTANCE_METRICS = (
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
)

# Gaussian-process kernels and the binary Laplace classifier: plain Python objects holding floats,
# arrays and other kernels; their methods only do linear algebra on them.
_GAUSSIAN_PROCESS = (
    "sklearn.gaussian_process.kernels.ConstantKernel",
    "sklearn.gaussian_process.kernels.WhiteKernel",
    "sklearn.gaussian_process.kernels.RBF",
    "sklearn.gaussian_process.kernels.Matern",
    "sklearn.gaussian_process.kernels.RationalQuadratic",
    "sklearn.gaussian_process.kernels.ExpSineSquared",
    "sklearn.gaussian_process.kernels.DotProduct",
    "sklearn.gaussian_process.kernels.PairwiseKernel",
    "sklearn.gaussian_process.kernels.Sum",
    "sklearn.gaussian_process.kernels.Product",
    "sklearn.gaussian_process.kernels.Exponentiation",
    "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
)

# Fitted-state holders of estimators skops trusts: arrays and floats, no file or process access.
_ESTIMATOR_STATE = (
    "sklearn._loss.loss.HalfTweedieLoss",
    "sklearn._loss.loss.HalfTweedieLossIdentity",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.cluster._bisect_k_means._BisectingTree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.utils._bunch.Bunch",  # a dict subclass (stacking/voting named estimators)
    "scipy.interpolate._bsplines.BSpline",  # knots and coefficients of SplineTransformer
    "numpy.dtype",
)

# Functions stored as hyper-parameters (score_func, pooling_func, …): pure numeric functions of
# their arguments, with no I/O. `functools.partial` only binds arguments to a function that is
# audited by itself (HistGradientBoosting's `check_array` partial for categorical dtypes).
_PURE_FUNCTIONS = (
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_regression",
    "sklearn.feature_selection._univariate_selection.r_regression",
    "sklearn.feature_selection._univariate_selection.chi2",
    "sklearn.feature_selection._mutual_info.mutual_info_classif",
    "sklearn.feature_selection._mutual_info.mutual_info_regression",
    "sklearn.cluster._kmeans._kmeans_single_lloyd",
    "sklearn.cluster._kmeans._kmeans_single_elkan",
    "sklearn.utils.validation.check_array",
    "numpy.mean",
    "numpy.median",
    "scipy._lib.array_api_compat.numpy._aliases.asarray",
    "functools.partial",
)

#: Every name above: what Maestrale trusts in a skops archive beyond skops' own defaults.
CURATED_TYPES: frozenset[str] = frozenset(
    _TREE_STRUCTURES + _DISTANCE_METRICS + _GAUSSIAN_PROCESS + _ESTIMATOR_STATE + _PURE_FUNCTIONS
)

#: Maestrale's own classes a registered model may contain (e.g. a feature pipeline): add each
#: fully qualified name here after reviewing that rebuilding it from attacker-chosen state is safe.
#: - `FeatureStep` (maestrale.features.step): its state is strings and lists of strings; the feature
#:   function is found by name at predict time under the rules of a spec (built-ins, plugins,
#:   MAESTRALE_ESTIMATOR_MODULES), never stored, and its time zone is checked before use.
#: - `NativeModel` (maestrale.features.native): its state is LightGBM/XGBoost bytes, a format and a
#:   flavor; rebuilding it runs `formats.deserialize` with the native structural checks and flavor
#:   allowlist, and any other format is refused.
MAESTRALE_TYPES: frozenset[str] = frozenset(
    {"maestrale.features.step.FeatureStep", "maestrale.features.native.NativeModel"}
)

# fmt: off
# Refused even when a caller names them in `trusted_types` (only `trusted=True` bypasses this):
# code execution, attribute walks to reach such functions, file/process/network access, and
# deserialisers that would reopen the pickle hole.
_DENIED_MODULES = (
    "os", "posix", "nt", "posixpath", "subprocess", "_posixsubprocess", "sys", "shutil", "importlib",
    "pickle", "_pickle", "copyreg", "marshal", "ctypes", "_ctypes", "cffi", "socket", "_socket", "ssl",
    "runpy", "code", "codeop", "pty", "types", "io", "_io", "pathlib", "tempfile", "glob", "fileinput",
    "multiprocessing", "threading", "_thread", "signal", "asyncio", "webbrowser", "urllib", "http",
    "ftplib", "smtplib", "zipimport", "pkgutil", "inspect", "gc", "joblib", "dill", "cloudpickle",
    "torch", "pandas.io", "numpy.lib.format", "numpy.ctypeslib",
)
_DENIED_NAMES = frozenset(
    f"builtins.{n}"
    for n in (
        "exec", "eval", "compile", "getattr", "setattr", "delattr", "__import__", "open", "globals",
        "locals", "vars", "breakpoint", "input", "help", "exit", "quit", "type", "object", "super",
        "memoryview", "classmethod", "staticmethod", "property", "__build_class__", "dir", "print",
    )
) | frozenset(
    (
        "operator.attrgetter", "operator.methodcaller", "_operator.attrgetter", "_operator.methodcaller",
        "numpy.load", "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.memmap",
        "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt", "numpy.fromregex",
        "pandas.read_pickle", "pandas.read_csv", "pandas.read_parquet", "pandas.eval",
        "functools.reduce",
    )
)
# fmt: on
# The last part of a name that reads, writes or runs something, in any module.
_DENIED_LEAF = re.compile(r"(^|_)(system|popen|spawn\w*|exec\w*|eval|load|loads|fromfile|read_\w+)$")
_DUNDER = re.compile(r"^__\w+__$")


def is_denied(name: str) -> bool:
    """True for a type no `trusted_types` list can make loadable (e.g. `builtins.exec`, `os.system`).

    >>> is_denied("subprocess.Popen"), is_denied("sklearn.linear_model._ridge.Ridge")
    (True, False)
    """
    if name in _DENIED_NAMES or any(name == m or name.startswith(m + ".") for m in _DENIED_MODULES):
        return True
    parts = name.split(".")
    # dunder attributes (`__import__`, `__globals__`, `__subclasses__`) are how sandbox escapes walk
    return any(_DUNDER.match(p) for p in parts) or bool(_DENIED_LEAF.search(parts[-1]))


@cache
def skops_default_types() -> frozenset[str]:
    """The names skops trusts without being told (used by the dump-time fast path only)."""
    try:
        from skops.io import _trusted_types as t
    except ImportError:  # pragma: no cover - a future skops moved them: the slow audit still runs
        return frozenset()
    names: list[str] = []
    for attr in dir(t):
        value = getattr(t, attr)
        if attr.endswith("_TYPE_NAMES") and isinstance(value, list):
            names.extend(v for v in value if isinstance(v, str))
    return frozenset(names)


def default_trusted_types() -> frozenset[str]:
    """What Maestrale adds to skops' defaults when nobody passes `trusted_types`."""
    return CURATED_TYPES | MAESTRALE_TYPES


def caller_types(extra: Iterable[str] | None) -> frozenset[str]:
    """The caller's `trusted_types` that may be honoured (the denied ones are dropped here)."""
    return frozenset(n for n in extra or () if not is_denied(n))


def is_trusted(name: str, extra: Iterable[str] | None = None) -> bool:
    """True if `name` may be rebuilt: skops default, curated, Maestrale's own, or allowed by the caller.

    >>> is_trusted("tests.MyScaler"), is_trusted("tests.MyScaler", extra=["tests.MyScaler"])
    (False, True)
    """
    if is_denied(name):
        return False
    return name in default_trusted_types() or name in skops_default_types() or name in (extra or ())


def denied_in(names: Iterable[str]) -> list[str]:
    """The names of `names` that `is_denied` refuses, sorted (for error messages)."""
    return sorted(n for n in names if is_denied(n))
