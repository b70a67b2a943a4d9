#!/usr/bin/env bash
# tools/dist_train.sh CONFIG GPUS [train.py args...]: segmentation or detection, as the config says;
# NNODES, NODE_RANK, PORT, MASTER_ADDR as usual.
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
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/tools/python_env.sh"
"$PYTHON" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
