#!/usr/bin/env bash
# Training on a Slurm cluster.
#   [GPUS=16] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
set -euo pipefail
[[ $# -ge 4 ]] || { echo "usage: $(sed -n 4p "$0" | cut -c4-)" >&2; exit 2; }
exec bash "$(dirname "${BASH_SOURCE[0]}")/_srun.sh" train.py "$1" "$2" "$3" \
    --work-dir="$4" "${@:5}"
