#!/usr/bin/env bash
# Creates VENV and installs torch, detectron2 and pudet (editable) into it.
# detectron2, first match wins:
#   1. one that the base interpreter can already import (a user's official build): the venv sees it
#      through --system-site-packages, and its torch is kept;
#   2. the official source (git), built with its C++/CUDA extension;
#   3. the registry's pb1-detectron2==0.6 source release (upstream v0.6 without layers/csrc), built
#      without the C++ extension; pudet.compat makes that variant importable.
# Usage: tools/install.sh [VENV] (PYTHON selects the base interpreter, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}
D2_GIT=${D2_GIT:-https://github.com/facebookresearch/detectron2.git}
PIP_FLAGS=(-q -c constraints.txt)

if "$PYTHON" -c "import detectron2, torch" 2>/dev/null; then
    echo "[install] the base interpreter already imports detectron2: using it (venv with system site-packages)"
    "$PYTHON" -m venv --system-site-packages "$VENV"
    PY="$VENV/bin/python"
else
    "$PYTHON" -m venv "$VENV"
    PY="$VENV/bin/python"
    "$PY" -m pip install "${PIP_FLAGS[@]}" --upgrade "setuptools<81" wheel
    echo "[install] torch + torchvision"
    "$PY" -m pip install "${PIP_FLAGS[@]}" torch torchvision
fi

if "$PY" -c "import detectron2" 2>/dev/null; then
    variant="already importable"
elif timeout 30 git ls-remote "$D2_GIT" HEAD >/dev/null 2>&1 \
        && "$PY" -m pip install "${PIP_FLAGS[@]}" --no-build-isolation "git+$D2_GIT"; then
    variant="official source ($D2_GIT)"
else
    echo "[install] official detectron2 source unreachable: building pb1-detectron2==0.6 without its C++ extension"
    src=$(mktemp -d)
    trap 'rm -rf "$src"' EXIT
    "$PY" -m pip download -q --no-deps --no-build-isolation -d "$src" pb1-detectron2==0.6
    tar -xzf "$src"/pb1-detectron2-0.6.tar.gz -C "$src"
    # the release lacks detectron2/layers/csrc: build no extension at all (pudet.compat handles the missing _C)
    sed -i 's/^    ext_modules=get_extensions(),$/    ext_modules=[],/' "$src/pb1-detectron2-0.6/setup.py"
    grep -q '^    ext_modules=\[\],$' "$src/pb1-detectron2-0.6/setup.py" || {
        echo "[install] unexpected pb1-detectron2 setup.py: cannot disable its extension" >&2; exit 1; }
    "$PY" -m pip install "${PIP_FLAGS[@]}" --no-build-isolation "$src/pb1-detectron2-0.6"
    variant="pb1-detectron2==0.6 source release, no C++ extension"
fi

echo "[install] pudet (editable) and its dependencies"
"$PY" -m pip install "${PIP_FLAGS[@]}" -e ".[test]"
echo "[install] detectron2: $variant"
"$PY" -m pudet.compat
