#!/usr/bin/env python
"""Preprocess circuits into an AIG dataset with ABC QoR labels (same as `geomask prep circuits`).

python tools/prep_circuits.py SRC... --out DIR [--recipes N] [--recipe-length L] [--recipe-family uniform|varied]
    [--seed S] [--jobs J]
    [--executor threads|ray] [--address ADDR]   # ray: ABC labels on a Ray cluster (pip install "geomask[ray]")
"""

import sys

from geomask.cli import main

if __name__ == "__main__":
    sys.exit(main(["prep", "circuits", *sys.argv[1:]]))
