#!/usr/bin/env bash
# Creates VENV and installs torch, detectron2 and pudet (editable) into it.
# detectron2, first match wins:
#   1. your own: the interpreter PYTHON already imports torch and detectron2 (a virtualenv, a conda env or the
#      system Python, with an official build of detectron2): VENV is created from it and sees that environment's
#      packages (a .pth file adds its site-packages directories, their own .pth files included, so editable
#      installs work), and pip keeps every version installed there;
#   2. the official source, built with its C++/CUDA extension: D2_SOURCE if set (a path or anything pip installs:
#      it must build, no fallback), else the git repository D2_GIT when it is reachable;
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
    base_prefix=$("$PYTHON" -c "import sys; print(sys.prefix)")
    echo "[install] $PYTHON already imports torch and detectron2: $VENV sees the packages of $base_prefix"
    # without pip and setuptools of its own: the environment's (pip, setuptools, torch...) are the ones seen
    "$PYTHON" -m venv --without-pip "$VENV"
    PY="$VENV/bin/python"
    "$PYTHON" - "$("$PY" -c "import sysconfig; print(sysconfig.get_path('purelib'))")/_pudet_base_env.pth" <<'EOF'
import os, site, sys
dirs = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
with open(sys.argv[1], "w") as f:
    for d in dirs:
        if os.path.isdir(d):
            f.write(f"import site; site.addsitedir({d!r})\n")
EOF
    "$PY" -c "import pip" 2>/dev/null || "$PY" -m ensurepip -q
    # pip may add packages to VENV but never another version of one installed in that environment
    own_constraints="$VENV/pudet-base-env-constraints.txt"
    "$PY" - constraints.txt > "$own_constraints" <<'EOF'
import importlib.metadata, re, sys
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
installed = {}
for dist in importlib.metadata.distributions():  # in sys.path order: the first of a name is the one imported
    if dist.metadata["Name"]:
        installed.setdefault(norm(dist.metadata["Name"]), dist.version)
for name, version in sorted(installed.items()):
    print(f"{name}=={version}")
for line in open(sys.argv[1]):
    requirement = line.split("#")[0].strip()
    if requirement and norm(re.split(r"[<>=!~;\[ ]", requirement)[0]) not in installed:
        print(requirement)
EOF
    PIP_FLAGS=(-q -c "$own_constraints")
    variant="your own, from $base_prefix"
else
    "$PYTHON" -m venv "$VENV"
    PY="$VENV/bin/python"
    "$PY" -m pip install "${PIP_FLAGS[@]}" --upgrade "setuptools<81" wheel
    echo "[install] torch + torchvision"
    "$PY" -m pip install "${PIP_FLAGS[@]}" torch torchvision
    if "$PY" -c "import detectron2" 2>/dev/null; then
        variant="already importable"
    elif [ -n "${D2_SOURCE:-}" ]; then
        echo "[install] detectron2 from $D2_SOURCE, with its compiled ops"
        "$PY" -m pip install "${PIP_FLAGS[@]}" --no-build-isolation "$D2_SOURCE"
        variant="official source ($D2_SOURCE)"
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
fi

echo "[install] pudet (editable) and its dependencies"
"$PY" -m pip install "${PIP_FLAGS[@]}" -e ".[test]"
echo "[install] detectron2: $variant"
"$PY" -m pudet.compat
