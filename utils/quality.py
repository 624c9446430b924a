"""Sample quality without a reference network: a small classifier trained on held-out images.

For the digits, "does a sample look like a digit?" is measured by the confidence (the largest
class probability) of a multinomial logistic regression trained with scikit-learn on real digits
that no generative model saw. Real held-out digits score high, noise and blends of two classes
score low, so "novel" samples with a high score are new *and* digit-like.

    clf = DigitClassifier().fit(X_heldout, y_heldout)   # X: (n, 1, 8, 8) or (n, 64) in [-1, 1]
    clf.confidence(samples)                              # (m,) in [1/10, 1]
"""
from __future__ import annotations

import numpy as np
import torch

from .checks import as_float_tensor, as_numpy_1d


def _flat(images, name: str) -> np.ndarray:
    t = as_float_tensor(images, name, ndim=(2, 3, 4))
    return t.reshape(t.shape[0], -1).double().cpu().numpy()


class DigitClassifier:
    """Multinomial logistic regression on flattened images (scikit-learn, L2 penalty ``C``).

    Works for any labelled image set; the book uses it for the 8x8 digits.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 3000):
        if isinstance(C, bool) or not isinstance(C, (int, float)) or not C > 0:
            raise ValueError(f"C must be a positive number, got {C!r}")
        self.C = float(C)
        self.max_iter = int(max_iter)
        self._clf = None
        self.d = None

    def fit(self, images, labels) -> "DigitClassifier":
        """Train on ``images`` (n, ...) with integer ``labels`` (n,); returns self."""
        from sklearn.linear_model import LogisticRegression

        X = _flat(images, "images")
        y = as_numpy_1d(labels, "labels")
        if len(y) != len(X):
            raise ValueError(f"images has {len(X)} rows but labels has {len(y)}")
        if not np.all(y == np.round(y)):
            raise ValueError("labels must be integers")
        if len(np.unique(y)) < 2:
            raise ValueError("labels must contain at least two classes")
        self._clf = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(X, y.astype(int))
        self.d = X.shape[1]
        return self

    def _checked(self, images, name="images") -> np.ndarray:
        if self._clf is None:
            raise RuntimeError("call fit(images, labels) first")
        X = _flat(images, name)
        if X.shape[1] != self.d:
            raise ValueError(f"{name} have {X.shape[1]} pixels but the classifier was trained on {self.d}")
        return X

    def proba(self, images) -> np.ndarray:
        """Class probabilities, (m, n_classes)."""
        X = self._checked(images)
        return self._clf.predict_proba(X)

    def confidence(self, images) -> np.ndarray:
        """The largest class probability of each image, (m,)."""
        return self.proba(images).max(axis=1)

    def predict(self, images) -> np.ndarray:
        """The most probable class of each image, (m,)."""
        X = self._checked(images)
        return self._clf.predict(X)

    def accuracy(self, images, labels) -> float:
        """Fraction of ``images`` classified as ``labels``."""
        y = as_numpy_1d(labels, "labels")
        pred = self.predict(images)
        if len(y) != len(pred):
            raise ValueError(f"images has {len(pred)} rows but labels has {len(y)}")
        return float((pred == y).mean())


def relative_confidence(clf: DigitClassifier, samples, real, *, seed: int = 0) -> float:
    """Where the samples' mean confidence lies between noise (0) and real images (1).

    q = (c(samples) - c(noise)) / (c(real) - c(noise)), with noise uniform in [-1, 1] of the
    samples' shape (seeded), so q is comparable across classifiers. q >= 0.5: closer to real
    digits than to noise.
    """
    S = as_float_tensor(samples, "samples", ndim=(2, 3, 4))
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.rand(S.shape, generator=gen) * 2 - 1
    c_s, c_r, c_n = (clf.confidence(a).mean() for a in (S, real, noise))
    if c_r <= c_n:
        raise ValueError("the classifier is no more confident on real images than on noise")
    return float((c_s - c_n) / (c_r - c_n))


def manifold_precision(samples, real, k: int = 3) -> float:
    """Fraction of ``samples`` that fall inside the k-nearest-neighbour balls of ``real`` images.

    Each real image r_i gets the radius of its k-th nearest other real image; a sample counts as
    realistic when it lies within that radius of at least one r_i (the "precision" of
    Kynkaenniemi et al., 2019, in pixel space). Real images score about 1 against other real
    images of the same distribution, uniform noise scores 0. Inputs (m, ...) and (n, ...), n > k.
    """
    from .metrics import nearest_neighbors

    R = as_float_tensor(real, "real", ndim=(2, 3, 4))
    R = R.reshape(R.shape[0], -1)
    S = as_float_tensor(samples, "samples", ndim=(2, 3, 4))
    S = S.reshape(S.shape[0], -1)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < len(R):
        raise ValueError(f"k must be an integer between 1 and {len(R) - 1}, got {k!r}")
    if S.shape[1] != R.shape[1]:
        raise ValueError(f"samples have {S.shape[1]} pixels but real images have {R.shape[1]}")
    radius = torch.from_numpy(nearest_neighbors(R, R, k=k + 1)[0][:, k])
    dist = torch.cdist(S.double(), R.double(), compute_mode="donot_use_mm_for_euclid_dist")
    return float((dist <= radius[None, :]).any(dim=1).double().mean())
