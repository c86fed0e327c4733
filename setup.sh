#!/usr/bin/env bash
# Set up rtdrive on a fresh Debian machine (Python >= 3.11): system packages, then .venv with the
# project installed editable. Idempotent: a second run only checks. Needs root (or sudo) for apt.
set -euo pipefail
cd "$(dirname "$0")"

# open3d needs libusb; its offscreen renderer needs Vulkan (loader + Mesa's software drivers).
SYSTEM_PACKAGES=(libusb-1.0-0 libvulkan1 mesa-vulkan-drivers libgl1 libgomp1)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing system packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "setup: rtdrive needs Python >= 3.11")'
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ ! -f .venv/.rtdrive-installed ] || [ pyproject.toml -nt .venv/.rtdrive-installed ]; then
  echo "setup: installing the Python environment into .venv (first time: a few minutes)" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[test]"
  touch .venv/.rtdrive-installed
fi

# The numba kernels compile at their first import; do it here, on all cores, with progress, rather
# than silently inside the first run (over a minute on one core). Only when a kernel module, numba
# or Python changed since the last warm-up (the stamp holds their fingerprint); numba's cache is
# cleared first then, since it keys each module on its own source only.
.venv/bin/python -m runtime.kernel_warmup --stamp .venv/.rtdrive-kernels
