#!/usr/bin/env python
"""Write any circuit (Verilog file or folder, .bench, .aag, .aig) as AIGER (same as `geomask convert`).

python tools/convert_circuit.py SRC OUT.aig [--latches keep|cut] [--top MODULE]
"""

import sys

from geomask.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
