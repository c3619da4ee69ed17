"""``python -m ftrecipes.train``: the main job as a module, which launchers run with their ``-m`` flag.

::

    python -m ftrecipes.train --recipe cls --output_dir runs/cls
    accelerate launch -m ftrecipes.train --recipe cls
    torchrun --nproc_per_node 2 -m ftrecipes.train --recipe cls

The same job, flags and exit codes as ``ftrecipes train`` and ``scripts/finetune.py``
(:func:`ftrecipes.job.run.main`): 0 done, 1 diverged, 2 bad input (one line on stderr, once under a
launcher, nothing written).
"""

from __future__ import annotations

import sys
from typing import Sequence

PROG = "ftrecipes train"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the main job on ``argv`` (default: this process's command line); returns its exit code."""
    from ftrecipes.job.run import main as run_job

    return run_job(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
