"""poisonscan: find data-poisoning backdoors in LLM training data before training on it."""

# The one place the version is written (pyproject.toml reads it from here). Asking
# importlib.metadata instead costs 50-90 ms on every start, a twentieth of a small cached scan.
__version__ = "0.1.0"

__all__ = ["__version__"]
