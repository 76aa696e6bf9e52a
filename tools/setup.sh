#!/usr/bin/env bash
# One-command set-up of the rtdetr_mm stack (torch, mmcv with ops, mmengine,
# mmdet, mmpretrain, timm, openmim, rtdetr_mm in editable mode).
#
#   bash tools/setup.sh                 # creates/reuses .venv in the repository
#   bash tools/setup.sh --use-active    # installs into the active environment
#   RTDETR_MM_VENV=/path/to/venv bash tools/setup.sh
#
# The first run builds mmcv (~37 min on 2 cores) and caches the wheel in
# ~/.cache/rtdetr_mm; later runs only check what is installed (seconds).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
use_active=0
args=()
for arg in "$@"; do
  case "$arg" in
    --use-active) use_active=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) args+=("$arg") ;;
  esac
done

if [[ $use_active == 1 ]]; then
  python=$(command -v python || command -v python3)
  echo "[setup] installing into the active environment: $python"
else
  venv="${RTDETR_MM_VENV:-$repo/.venv}"
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "[setup] creating virtual environment $venv"
    "${PYTHON:-python3}" -m venv "$venv"
  else
    echo "[setup] reusing virtual environment $venv"
  fi
  python="$venv/bin/python"
fi
"$python" -u "$repo/tools/setup_env.py" ${args[@]+"${args[@]}"}
if [[ $use_active == 0 ]]; then
  echo "[setup] activate it with: source ${venv#$PWD/}/bin/activate"
fi
