#!/usr/bin/env python
"""equivalence evaluation (same as `geomask eval equivalence`).

python tools/eval_equivalence.py SRC... --json OUT [--out DIR] [--methods ...] [--seeds 0 1 2]
    [--pretrain-steps N] [--finetune-steps N] [--jobs J]
"""

import sys

from geomask.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", "equivalence", *sys.argv[1:]]))
