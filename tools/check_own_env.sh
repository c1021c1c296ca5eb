#!/usr/bin/env bash
# Checks the README's install into your own environment. Makes an environment with torch and detectron2 (built
# from D2_SOURCE with its compiled ops, as a user builds it) and no pudet, runs the README's command with it
# activated (`make install`, here with VENV in WORKDIR), and checks that pudet imports there with that
# environment's detectron2 and torch, and that the environment itself is unchanged.
# Usage: tools/check_own_env.sh D2_SOURCE [WORKDIR]   (WORKDIR: default a temporary folder, removed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
d2_source=$1
work=${2:-}
if [ -z "$work" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
env=$work/own-env
venv=$work/pudet-venv
echo "[check] a user's environment: torch + detectron2 from $d2_source in $env"
python3 -m venv "$env"
"$env/bin/python" -m pip install -q -c constraints.txt "setuptools<81" wheel torch torchvision
"$env/bin/python" -m pip install -q -c constraints.txt --no-build-isolation "$d2_source"
"$env/bin/python" -m pip freeze > "$work/before.txt"

echo "[check] the README's command with that environment activated: make install"
( . "$env/bin/activate" && make install VENV="$venv" )

"$venv/bin/python" - "$env" <<'PY'
import os, sys

import detectron2
import torch

import pudet
from pudet import compat

env = os.path.realpath(sys.argv[1])
for module in (detectron2, torch):
    where = os.path.realpath(module.__file__)
    assert where.startswith(env + os.sep), f"{module.__name__} imported from {where}, not from {env}"
assert os.path.realpath(pudet.__file__).startswith(os.getcwd() + os.sep), pudet.__file__
assert compat.has_compiled_ops(), compat.detectron2_variant()
print(f"[check] pudet ({os.path.dirname(pudet.__file__)}) imports with {compat.detectron2_variant()} and torch "
      f"{torch.__version__}, both from {env}")
PY
"$env/bin/python" -m pip freeze > "$work/after.txt"
diff "$work/before.txt" "$work/after.txt" || { echo "[check] the install changed the user's environment" >&2; exit 1; }
echo "[check] the user's environment is unchanged"

echo "[check] INSTALL's other way: python -m pip install -e \".[test]\" in the environment itself"
"$env/bin/python" -m pip install -q -e ".[test]"
"$env/bin/python" -m pip freeze | grep -iE "^(torch|torchvision|detectron2)[=@ ]" > "$work/after-e.txt"
grep -iE "^(torch|torchvision|detectron2)[=@ ]" "$work/before.txt" | diff - "$work/after-e.txt" \
    || { echo "[check] pip install -e .[test] changed torch, torchvision or detectron2" >&2; exit 1; }
(cd "$work" && "$env/bin/python" -c "import pudet; from pudet import compat; assert compat.has_compiled_ops(); print('[check]', pudet.__file__, compat.detectron2_variant())")
