#!/usr/bin/env bash
# Install robustgan into ./.venv on a Debian machine with Python >= 3.10:
# Fashion-MNIST from Debian (the default data set), CPU PyTorch 2.13.0, then the package with its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q dataset-fashion-mnist
fi
python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[dev]'
echo "robustgan installed in $(pwd)/.venv"
