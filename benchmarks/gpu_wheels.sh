#!/usr/bin/env bash
# Wheels that a bare CUDA machine (Python 3.12, torch, pytorch-lightning, numpy, opencv, scikit-image,
# pyyaml, packaging ... already installed) needs to run mouseemo from the source tree, written to
# .whl/ in the repository root:
#
#   hydra-core, omegaconf, antlr4-python3-runtime   configs (train.py, mouseemo train/evaluate)
#   kornia, kornia_rs                                training augmentation on the device
#
# wandb is left out on purpose: mouseemo imports it only for logger=wandb, and its dependencies
# (pydantic, sentry, opentelemetry, ...) are heavy. benchmarks/gpu_check.py trains with logger=csv.
#
# Versions follow what is installed here (override with HYDRA_VERSION=..., KORNIA_VERSION=..., ...).
# Then, on the CUDA machine, from the repository root:
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:$PWD
#   python3 benchmarks/gpu_check.py --out "$OUT/gpu_check.md"
#
#   bash benchmarks/gpu_wheels.sh            # download into .whl/
#   bash benchmarks/gpu_wheels.sh --check    # also install them into a scratch folder and import them
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=.whl
PYVER=${GPU_PYTHON_VERSION:-3.12}

installed() {  # installed version of a distribution, or the fallback
    "$PY" -c "import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: print(sys.argv[2])" "$1" "$2"
}

HYDRA_VERSION=${HYDRA_VERSION:-$(installed hydra-core 1.3.2)}
OMEGACONF_VERSION=${OMEGACONF_VERSION:-$(installed omegaconf 2.3.0)}
ANTLR_VERSION=${ANTLR_VERSION:-$(installed antlr4-python3-runtime 4.9.3)}
KORNIA_VERSION=${KORNIA_VERSION:-$(installed kornia 0.8.1)}
KORNIA_RS_VERSION=${KORNIA_RS_VERSION:-$(installed kornia_rs 0.1.9)}

mkdir -p "$DEST"

download() {  # binary wheels for CPython $PYVER on x86-64 Linux, no dependencies
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$DEST" "$1"
}

download "hydra-core==$HYDRA_VERSION"
download "omegaconf==$OMEGACONF_VERSION"
download "kornia==$KORNIA_VERSION"
download "kornia_rs==$KORNIA_RS_VERSION"
# antlr4-python3-runtime 4.9.x (what omegaconf 2.3 pins) is published as a source archive only; it is
# pure Python, so a wheel built here installs anywhere.
if ! download "antlr4-python3-runtime==$ANTLR_VERSION" 2>/dev/null; then
    "$PY" -m pip wheel -q --no-deps --no-binary=antlr4-python3-runtime -w "$DEST" \
        "antlr4-python3-runtime==$ANTLR_VERSION"
fi

echo "wheels in $DEST:"
ls -l "$DEST"/*.whl | awk '{printf "  %8.1f KiB  %s\n", $5 / 1024, $NF}'
du -sh "$DEST" | awk '{print "total " $1}'
echo "their requirements (all must be present on the CUDA machine or in this folder):"
for whl in "$DEST"/*.whl; do
    unzip -p "$whl" '*.dist-info/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' \
        | sed "s|^|  $(basename "$whl"): |" || true
done

if [[ "${1:-}" == "--check" ]]; then
    # 1. Every wheel installs for CPython $PYVER (as on the CUDA machine) into a scratch folder; with a
    #    python$PYVER here, the configs and the compiled kornia_rs import from it (kornia itself needs
    #    torch, which that interpreter may lack: checked in 2.).
    scratch=$(mktemp -d /tmp/mouseemo-wheels.XXXXXX)
    trap 'rm -rf "$scratch"' EXIT
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$scratch/site" \
        --python-version "$PYVER" --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        "$DEST"/*.whl
    echo "installed for CPython $PYVER into a scratch folder: ok"
    PYX=""
    for cand in ${CHECK_PYTHON:-} "python$PYVER" "$HOME"/.pyenv/versions/"$PYVER"*/bin/"python$PYVER"; do
        if "$cand" -c pass 2>/dev/null; then PYX=$cand; break; fi
    done
    if [[ -n "$PYX" ]]; then
        extra="$scratch/extra"  # pyyaml and packaging are on the CUDA machine; a bare interpreter here may lack them
        for pair in yaml:pyyaml packaging:packaging; do
            if ! "$PYX" -c "import ${pair%%:*}" 2>/dev/null; then
                "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
                    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$scratch/dl" "${pair##*:}"
            fi
        done
        if [[ -d "$scratch/dl" ]]; then
            "$PY" -m pip install -q --no-index --no-deps --target "$extra" --python-version "$PYVER" \
                --only-binary=:all: --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "$scratch"/dl/*.whl
        fi
        PYTHONPATH="$scratch/site:$extra" "$PYX" -c "
import sys, hydra, omegaconf, antlr4, kornia_rs
for m in (hydra, omegaconf, antlr4, kornia_rs):
    assert m.__file__.startswith('$scratch/site'), m.__file__
print(f'  python {sys.version.split()[0]}: hydra {hydra.__version__}, omegaconf {omegaconf.__version__}, antlr4, kornia_rs {kornia_rs.__version__} import from the wheels: ok')
"
    else
        echo "  (no python$PYVER here: the compiled kornia_rs wheel was not imported)"
    fi
    # 2. With this interpreter: the pure-Python wheels import, and train.py's config composes with
    #    trainer=gpu (kornia_rs comes from this environment when its wheel is for another Python).
    mkdir -p "$scratch/pure"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$scratch/pure" "$DEST"/*-py3-none-any.whl
    PYTHONPATH="$scratch/pure:$PWD" "$PY" -c "
import sys, hydra, omegaconf, kornia
for m in (hydra, omegaconf, kornia):
    assert m.__file__.startswith('$scratch/pure'), m.__file__
from hydra import compose, initialize_config_dir
from mouseemo.hydra_entry import config_dir
from mouseemo.utils.resolvers import register_resolvers
register_resolvers()
with initialize_config_dir(config_dir=str(config_dir()), version_base='1.3'):
    cfg = compose('train', overrides=['trainer=gpu', 'logger=csv', 'baseline=null'])
assert cfg.trainer.precision == 'bf16-mixed'
print(f'  python {sys.version.split()[0]}: hydra, omegaconf, kornia {kornia.__version__} from the wheels; train config with trainer=gpu composes: ok')
"
fi
