#!/usr/bin/env bash
# Pretext study, GPU grid (issue 5): random / inpaint / DenseCL / DenseCL+inpaint
# initialisations x label budgets 1/10/100 % x pretraining budgets 2,000 / 15,000 pages,
# 256 px tiles (bench/pretext_study.py, grid "gpu"). One GPU, the machine's cores render.
#
#   bash bench/pretext_study_gpu.sh                 # results in bench/results/pretext_study_gpu.{json,png}
#   OUT_DIR=$OUT WORK=/tmp/pts bash bench/pretext_study_gpu.sh
#
# Resumable: rerun the same command and finished runs are skipped (JSON written after
# each run, pretraining checkpoints and the tile caches kept in $WORK).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT_DIR:-bench/results}
WORK=${WORK:-runs/pretext_study_gpu}
mkdir -p "$OUT_DIR" "$WORK"
export PYTHONUNBUFFERED=1
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: run the cpu grid (python bench/pretext_study.py --grid cpu)"
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv || true
python bench/pretext_study.py --grid gpu --work "$WORK" --out "$OUT_DIR/pretext_study_gpu.json" "$@" \
    2>&1 | tee -a "$WORK/study.log"
