"""Root conftest: nbval's comparison with the tolerances that cells declare (tests/nbval_tolerance.py)."""
pytest_plugins = ("tests.nbval_tolerance",)
