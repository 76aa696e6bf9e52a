#!/usr/bin/env bash
# Shared by dist_train.sh / dist_test.sh: run SCRIPT on NPROC local processes
# with torchrun. Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT.
#   bash tools/_torchrun.sh SCRIPT NPROC [script args...]
set -euo pipefail
SCRIPT=$1
NPROC=$2
shift 2
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$TOOLS/$SCRIPT" "$@" --launcher pytorch
