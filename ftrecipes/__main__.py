"""``python -m ftrecipes``: the ``ftrecipes`` command (:mod:`ftrecipes.cli`), e.g. ``python -m ftrecipes train``."""

import sys

from ftrecipes.cli import main

if __name__ == "__main__":
    sys.exit(main())
