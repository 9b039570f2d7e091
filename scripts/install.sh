#!/usr/bin/env bash
# Install robustgan into ./.venv on a Debian machine with Python >= 3.10:
# Fashion-MNIST from Debian (the default data set), CPU PyTorch 2.13.0, then the package with its test tools.
# On a plain Debian system `python3 -m venv` needs the python3-venv package; it is installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
need_apt=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need_apt+=(dataset-fashion-mnist)
# A Python whose venv cannot bootstrap pip (Debian's python3 without python3-venv) gets the package.
python3 -c "import ensurepip, venv" 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q "${need_apt[@]}"
  else
    echo "robustgan install: please install ${need_apt[*]} (no apt-get on this machine)" >&2
    [[ " ${need_apt[*]} " == *" python3-venv "* ]] && exit 1
  fi
fi
python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[dev]'
echo "robustgan installed in $(pwd)/.venv"
