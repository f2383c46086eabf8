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


class CountingMeanRegressor(BaseEstimator):
    """Predicts the training mean; its fit takes no sample_weight and counts its calls.

    Stands for a company's own estimator that cannot weigh rows: `fits` proves whether
    training got as far as fitting before refusing `sample_weight:`.
    """

    fits = 0

    def fit(self, X, y):
        type(self).fits += 1
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)
