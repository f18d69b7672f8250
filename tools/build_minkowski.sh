#!/bin/bash
# CPU-only build of MinkowskiEngine (NVIDIA/MinkowskiEngine master 02fc608, "0.5.4") in a venv of its own, against
# torch 2.13.0+cpu on Python 3.11, to run geomask's MinkowskiEngine backend and its parity tests
# (tests/sparse/test_sparse_backends.py -k minkowski: 6 passed here, session 5; about 35 minutes on 2 cores).
#
#   git clone https://github.com/NVIDIA/MinkowskiEngine ME && git -C ME checkout 02fc608
#   apt-get install -y libopenblas-dev
#   tools/build_minkowski.sh ~/peers/minkowski ME
#   cd /tmp && PYTHONPATH=/path/to/geomask NUMBA_CACHE_DIR=/tmp/numba ~/peers/minkowski/bin/python -m pytest \
#       -p no:cacheprovider /path/to/geomask/tests/sparse/test_sparse_backends.py -k minkowski
#
# Why its own venv: MinkowskiEngine's setup.py needs numpy.distutils (numpy < 1.26), so numba <= 0.58 there, while
# geomask's own venv has numpy 2.  Torch is pinned to the CPU wheel first (a looser pin pulls the CUDA build).
# No source patch is needed for a CPU-only build (the known torch-2 fixes of the forks are CUDA-side).
set -euo pipefail
VENV=${1:?usage: tools/build_minkowski.sh VENV_DIR MINKOWSKI_SOURCE_DIR}
SRC=$(cd "${2:?usage: tools/build_minkowski.sh VENV_DIR MINKOWSKI_SOURCE_DIR}" && pwd)
python3 -m venv "$VENV"
"$VENV/bin/pip" install torch==2.13.0+cpu
"$VENV/bin/pip" install "numpy<1.26" ninja wheel
cd "$SRC"
MAX_JOBS=${MAX_JOBS:-2} nice -n 19 "$VENV/bin/python" setup.py bdist_wheel --cpu_only --blas=openblas
"$VENV/bin/pip" install --no-deps dist/[Mm]inkowski[Ee]ngine-*.whl
"$VENV/bin/pip" install "numpy<1.26" numba==0.58.1 pytest pyyaml  # to import geomask.sparse and run the tests
cd /tmp && "$VENV/bin/python" -c "import MinkowskiEngine as ME; print('MinkowskiEngine', ME.__version__)"
