#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py options]
# Multi-node: NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 [PORT=29500] tools/dist_train.sh ...
# Works with 1 process on a CPU-only machine (gloo) and on GPUs (nccl).
# CUDA_VISIBLE_DEVICES is left as you set it.
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 CONFIG GPUS [options]" >&2; exit 2; fi
CONFIG=$1
GPUS=$2
if ! [[ "$GPUS" =~ ^[0-9]+$ ]] || (( 10#$GPUS == 0 )); then
    echo "error: GPUS must be a positive number of processes per node, got '$GPUS' (usage: $0 CONFIG GPUS [options])" >&2
    exit 2
fi
shift 2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PORT=${PORT:-$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec python -m skeletonagent.engine.launch --nnodes="$NNODES" --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" --master_port="$PORT" --nproc_per_node="$GPUS" \
    "$ROOT/tools/train.py" "$CONFIG" "$@"
