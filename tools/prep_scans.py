#!/usr/bin/env python
"""Preprocess scans into a voxelized dataset (same as `geomask prep scans`).

python tools/prep_scans.py SCAN... --out DIR --voxel-size V [--labels FILE...] [--label-map NAME] [--jobs J]
"""

import sys

from geomask.cli import main

if __name__ == "__main__":
    sys.exit(main(["prep", "scans", *sys.argv[1:]]))
