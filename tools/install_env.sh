#!/usr/bin/env bash
# Creates .venv (Python 3.11) in the repository root with the exact stack of ../shared/ENVIRONMENT.md.
# Idempotent: a finished install leaves a stamp holding the hash of its inputs; a second call with
# the same inputs returns at once, a changed requirement file reinstalls.
#
# Order matters (ENVIRONMENT.md):
#   1. torch + torchvision (exact pair; the CUDA build of torch 2.14.1 also runs on the CPU),
#   2. setuptools<82 and wheel (mmcv's setup.py and mmengine's `mmseg::` configs need pkg_resources),
#   3. mmcv 2.1.0 with compiled ops: from ../shared/wheels when the prebuilt wheel is there, otherwise
#      built from the registry's source package with -std=c++20 (about 45 minutes on 2 cores),
#   4. OpenMMLab, DeepSpeed, transformers and the rest, then this package in editable mode.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
wheels="${INTERNVL_WHEELS:-$root/../shared/wheels}"
python_bin="${INSTALL_PYTHON:-python3.11}"

inputs_hash="$(cat tools/install_env.sh requirements/*.txt setup.py | sha256sum | cut -c1-16)"
stamp="$venv/.installed-$inputs_hash"
if [[ -f "$stamp" ]]; then
    exit 0
fi

log() { printf '[install] %s\n' "$*"; }

if [[ ! -x "$venv/bin/python" ]]; then
    log "creating $venv with $python_bin"
    "$python_bin" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)

log "torch==2.14.1 torchvision==0.29.1"
"${pip[@]}" torch==2.14.1 torchvision==0.29.1
"${pip[@]}" 'setuptools<82' wheel

if "$venv/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
    log "mmcv 2.1.0 with ops already present"
elif compgen -G "$wheels/mmcv-2.1.0-*.whl" >/dev/null; then
    log "mmcv 2.1.0 from the prebuilt wheel in $wheels"
    "${pip[@]}" --find-links "$wheels" --only-binary mmcv mmcv==2.1.0
else
    log "no prebuilt mmcv wheel in $wheels: building mmcv 2.1.0 from source (about 45 minutes on 2 cores)"
    build_dir="$(mktemp -d)"
    "$venv/bin/python" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: --no-build-isolation \
        mmcv==2.1.0 -d "$build_dir"
    tar -xzf "$build_dir"/mmcv-2.1.0.tar.gz -C "$build_dir"
    # torch 2.14's headers need C++20; mmcv 2.1.0 hard-codes C++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$build_dir/mmcv-2.1.0/setup.py"
    # Without --no-build-isolation the build silently skips the compiled ops (mmcv._ext).
    MMCV_WITH_OPS=1 MAX_JOBS="$(nproc)" "${pip[@]}" --no-build-isolation --no-deps "$build_dir/mmcv-2.1.0"
    rm -rf "$build_dir"
fi

log "OpenMMLab, DeepSpeed, transformers and the rest"
"${pip[@]}" -r requirements/runtime.txt -r requirements/tests.txt
"${pip[@]}" --no-deps --no-build-isolation -e .

"$venv/bin/python" - <<'EOF'
import mmcv, mmcv.ops, mmengine, mmseg, mmdet, torch  # noqa: F401  (fails loudly on a broken stack)
assert torch.__version__.startswith('2.14.1'), torch.__version__
assert mmcv.__version__ == '2.1.0', mmcv.__version__
EOF
rm -f "$venv"/.installed-*
touch "$stamp"
log "done: $venv"
