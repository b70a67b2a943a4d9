#!/usr/bin/env bash
# tools/dist_train.sh CONFIG GPUS [train.py args...]: segmentation or detection, as the config says;
# NNODES, NODE_RANK, PORT, MASTER_ADDR as usual; RDZV_TIMEOUT: seconds a node waits for the others
# before it gives up (default 600).
# Without GPUs: tools/dist_train.sh CONFIG 2 --cpu runs 2 processes on the CPU (gloo).
# Python: $PYTHON, else the project's .venv, else python (tools/python_env.sh).
CONFIG=$1
GPUS=$2
if ! [[ "$GPUS" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: dist_train.sh: GPUS must be the number of processes per node (a positive integer), got '$GPUS'; usage: tools/dist_train.sh CONFIG GPUS [train.py args...]" >&2
    exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
RDZV_TIMEOUT=${RDZV_TIMEOUT:-600}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/tools/python_env.sh"
if [[ "$NNODES" -gt 1 ]]; then
    echo "dist_train.sh: node $NODE_RANK of $NNODES waits for all $NNODES nodes at $MASTER_ADDR:$PORT" \
        "(gives up after ${RDZV_TIMEOUT}s; RDZV_TIMEOUT sets it)" >&2
fi
"$PYTHON" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" --rdzv-conf timeout="$RDZV_TIMEOUT" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
status=$?
if [[ $status -ne 0 && "$NNODES" -gt 1 ]]; then
    echo "error: dist_train.sh: node $NODE_RANK of $NNODES stopped (exit $status); if it never started" \
        "training, the other nodes did not join at $MASTER_ADDR:$PORT within ${RDZV_TIMEOUT}s" >&2
fi
exit $status
