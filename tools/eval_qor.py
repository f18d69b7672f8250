#!/usr/bin/env python
"""qor evaluation (same as `geomask eval qor`).

python tools/eval_qor.py SRC... --json OUT [--out DIR] [--methods ...] [--seeds 0 1 2]
    [--pretrain-steps N] [--finetune-steps N] [--jobs J] [--recipes N]
"""

import sys

from geomask.eval.command import main

if __name__ == "__main__":
    sys.exit(main(["qor", *sys.argv[1:]]))
