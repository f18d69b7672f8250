#!/usr/bin/env python
"""probability evaluation (same as `geomask eval probability`).

python tools/eval_probability.py SRC... --json OUT [--out DIR] [--methods ...] [--seeds 0 1 2]
    [--pretrain-steps N] [--finetune-steps N] [--jobs J]
"""

import sys

from geomask.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", "probability", *sys.argv[1:]]))
