"""A user-defined transformer, standing for a company's own feature code in tests."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class ClipTransformer(TransformerMixin, BaseEstimator):
    """Clip features to ±3 (like a plant's own outlier guard)."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.clip(np.asarray(X, dtype=float), -3, 3)
