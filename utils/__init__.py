"""The book's importable library (``import utils``).

Submodules are imported lazily, so ``import utils`` is cheap and a notebook pays only for what
it uses (diffusers and transformers, for instance, load only in the chapters that need them)::

    import utils
    X, labels = utils.data.gaussian_mixture(1000, 64, 4, 3)
    H = utils.metrics.spikiness(model.encode(X))

Conventions: a batch of vectors is a float32 tensor of shape (n, d); images are float32 tensors
of shape (n, C, H, W) with values in [-1, 1].
"""
import importlib

__all__ = [
    "data", "metrics", "diffusion", "models", "train", "representations", "steering",
    "plotting", "seeding", "checks", "gmm", "bootstrap", "quality", "unet", "train_unet", "dropdown_explorer",
    "memorization", "regimes", "linear_dae", "subspaces", "explorer", "exercises",
]


def __getattr__(name):
    if name in __all__:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'utils' has no attribute {name!r}; submodules: {', '.join(__all__)}")


def __dir__():
    return sorted(list(globals()) + __all__)
