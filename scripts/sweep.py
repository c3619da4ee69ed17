#!/usr/bin/env python
"""Sweep a recipe's peak LR (then its warmup) with Optuna; same as `ftrecipes sweep`.

    python scripts/sweep.py --recipe cls --lr 2e-5,3e-5,5e-5,1e-4,2e-4 --seeds 2 --dataset_name tweets
    python scripts/sweep.py --recipe cls --lr 1e-5:1e-3 --n_trials 8 --warmup 0,2%,5%,10%
    python scripts/sweep.py --help

Every other flag is a finetune.py flag, given to every trial. Run the same command again to resume, or
on several machines with one --storage URL to share the work. Exit codes: 0 done, 2 bad input.
"""

import sys

from ftrecipes.sweeps.study import main

if __name__ == "__main__":
    sys.exit(main())
