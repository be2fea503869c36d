"""poisonscan: find data-poisoning backdoors in LLM training data before training on it."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("poisonscan")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
