#!/usr/bin/env python
"""Reproduce a baseline card: run it over seeds through the finetune pipeline and check the result; the same as
``ftrecipes reproduce``.

    python scripts/reproduce.py --list
    python scripts/reproduce.py --card bbc-minilm                    # the card's number of seeds
    python scripts/reproduce.py --card tweets-minilm --record        # write the measured mean into the card
"""

import sys

from ftrecipes.baselines.reproduce import main as _reproduce


def main(argv: list[str] | None = None) -> int:
    return _reproduce(argv, prog="reproduce.py")


if __name__ == "__main__":
    sys.exit(main())
