"""Allow ``python -m poisonscan``; also the ``poisonscan`` command's entry point (``main``)."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Load the CLI and run it. Loading takes a moment (numpy, pyarrow, numba), and a Ctrl-C
    meanwhile is answered as during a scan: one line and exit code 2, not a traceback."""
    try:
        from poisonscan.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("poisonscan: error: interrupted\n")
        sys.stderr.flush()
        os._exit(2)
    cli_main()


if __name__ == "__main__":
    main()
