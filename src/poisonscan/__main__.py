"""Allow ``python -m poisonscan``."""

from poisonscan.cli import main

if __name__ == "__main__":
    main()
