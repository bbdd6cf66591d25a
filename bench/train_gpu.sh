#!/usr/bin/env bash
# The gpu config (training/configs/gpu.yaml) as one prepared run for a lent GPU.
#
#   bash bench/train_gpu.sh                 # time-boxed: cosine over MINUTES (default 7) of wall clock
#   MINUTES=0 bash bench/train_gpu.sh       # the full run: epochs x steps per epoch from gpu.yaml
#   NPROC=8 bash bench/train_gpu.sh         # several GPUs on one machine (torchrun, DDP)
#
# Then evaluates best.pt on the first 300 validation tiles. Outputs (best.pt, config.yaml,
# metrics.jsonl, train.log, eval/eval.json, eval/predictions.png) go to $OUT when set (the
# device machine's return folder), else runs/gpu_out. Extra arguments are key=value overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-7}
NPROC=${NPROC:-1}
PY=${PYTHON:-python3}
DEST=${OUT:-runs/gpu_out}
RUN=runs/gpu
mkdir -p "$DEST" "$RUN"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PY" -c "import torch, cv2, yaml, click, tqdm; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

ARGS=(--config training/configs/gpu.yaml --out-dir "$RUN")
if [ "$MINUTES" != "0" ]; then
  ARGS+=(schedule=time "max_minutes=$MINUTES" steps=10000000 epochs=1000)
fi
if [ "$NPROC" -gt 1 ]; then
  LAUNCH=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m training.cli finetune)
else
  LAUNCH=("$PY" -m training.cli finetune)
fi
set -o pipefail
"${LAUNCH[@]}" "${ARGS[@]}" "$@" 2>&1 | tee "$DEST/train.log"
"$PY" -m training.cli evaluate --checkpoint "$RUN/best.pt" --limit 300 --out "$DEST/eval" 2>&1 | tee -a "$DEST/train.log"
cp "$RUN/best.pt" "$RUN/config.yaml" "$RUN/metrics.jsonl" "$DEST/"
