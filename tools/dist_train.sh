#!/usr/bin/env bash
# Distributed training with torchrun (DDP through MMEngine).
#   bash tools/dist_train.sh CONFIG GPUS [train.py args...]
# Multi-node: on every node set NNODES, NODE_RANK, MASTER_ADDR (and PORT), e.g.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash tools/dist_train.sh CONFIG 8
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: bash tools/dist_train.sh CONFIG GPUS [train.py args...]" >&2
  exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
exec bash "$(dirname "${BASH_SOURCE[0]}")/_torchrun.sh" train.py "$GPUS" "$CONFIG" "$@"
