#!/usr/bin/env python
"""qor evaluation (same as `geomask eval qor`).

python tools/eval_qor.py SRC... --json OUT [--out DIR] [--methods ...] [--seeds 0 1 2]
    [--pretrain-steps N] [--finetune-steps N] [--jobs J] [--recipes N]
"""

import sys

from geomask.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", "qor", *sys.argv[1:]]))
