#!/usr/bin/env bash
# Starts the ranks of a multi-process job on this machine with the environment torchrun
# gives each process (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR,
# MASTER_PORT), for commands that read it (cushioncache search). torchrun itself works
# as well where PyTorch is installed.
#
#   scripts/launch_ranks.sh [--nproc N] [--nnodes M --node-rank R] [--master-addr HOST]
#                           [--master-port PORT] -- COMMAND [ARGS...]
#
# On several machines run it on each with the same --nnodes, --master-addr (node 0's
# address) and --master-port, and --node-rank 0..M-1. If one rank fails the others on
# this machine are stopped, and the script exits with the first failing rank's code.
set -euo pipefail

nproc=1 nnodes=1 node_rank=0 master_addr=127.0.0.1 master_port=29500
while [ $# -gt 0 ]; do
  case "$1" in
    --nproc) nproc="$2"; shift 2 ;;
    --nnodes) nnodes="$2"; shift 2 ;;
    --node-rank) node_rank="$2"; shift 2 ;;
    --master-addr) master_addr="$2"; shift 2 ;;
    --master-port) master_port="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "launch_ranks: unknown option $1 (the command goes after --)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "launch_ranks: no command given after --" >&2; exit 2; }
for n in "$nproc" "$nnodes" "$node_rank" "$master_port"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "launch_ranks: '$n' is not a number" >&2; exit 2; }
done

world=$((nproc * nnodes))
pids=()
for ((local = 0; local < nproc; local++)); do
  RANK=$((node_rank * nproc + local)) LOCAL_RANK=$local WORLD_SIZE=$world LOCAL_WORLD_SIZE=$nproc \
    MASTER_ADDR=$master_addr MASTER_PORT=$master_port "$@" &
  pids+=($!)
done

status=0
remaining=${#pids[@]}
while [ "$remaining" -gt 0 ]; do
  code=0
  wait -n || code=$?
  remaining=$((remaining - 1))
  if [ "$code" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$code
    echo "launch_ranks: a rank exited with code $code; stopping the others" >&2
    kill "${pids[@]}" 2>/dev/null || true
  fi
done
exit "$status"
