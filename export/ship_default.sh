#!/usr/bin/env bash
# Export a finetune checkpoint as the shipped default model, with its model card.
#
#   TRAIN_CMD='how it was trained' bash export/ship_default.sh runs/cpu/best.pt "status note for the card"
#
# 1. export (fp32 + int8 gate) into runs/ship/   2. ship int8 if it passed its gate, else fp32
# 3. evaluate the shipped file on the run's validation split   4. speed bench   5. MODEL_CARD.md
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${1:?usage: export/ship_default.sh CHECKPOINT [NOTE]}
NOTE=${2:-}
THREADS=${THREADS:-2}
OUT=runs/ship
mkdir -p "$OUT"
RUN_DIR=$(dirname "$CKPT")

logdigit-train export "$CKPT" -o "$OUT/logdigit_default.onnx" --int8 --fp16 --eval-tiles 64 --threads "$THREADS"
if [ -f "$OUT/logdigit_default.int8.onnx" ]; then SHIP="$OUT/logdigit_default.int8.onnx"; else SHIP="$OUT/logdigit_default.onnx"; fi
cp "$SHIP" logdigit/models/logdigit_default.onnx
chmod 644 logdigit/models/logdigit_default.onnx

# the run's data section -> evaluation config: its own page-disjoint validation split
python - "$RUN_DIR/config.yaml" "$OUT/eval_config.yaml" <<'EOF'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
yaml.safe_dump({"data": cfg["data"], "threads": 2}, open(sys.argv[2], "w"), sort_keys=False)
EOF
logdigit-train evaluate --onnx logdigit/models/logdigit_default.onnx --config "$OUT/eval_config.yaml" \
    --out "$OUT/eval" --quiet

INT8_ARG=()
[ -f "$OUT/logdigit_default.int8.onnx" ] && INT8_ARG=(--int8 "$OUT/logdigit_default.int8.onnx")
python bench/export_speed.py --checkpoint "$CKPT" --model "$OUT/logdigit_default.onnx" "${INT8_ARG[@]}"

# TRAIN_CMD: the command(s) that trained $CKPT, recorded verbatim in the model card
TRAIN_CMD=${TRAIN_CMD:-"nice -n 5 python bench/train_cpu.py --until HH:MM > $RUN_DIR/train.log 2>&1"}
cat > "$OUT/commands.sh" <<EOF
# training: training/configs/cpu.yaml on a wall-clock budget; the resolved config actually
# used is printed below (bench/train_cpu.py writes it to $RUN_DIR/config.yaml)
$TRAIN_CMD
# export, int8 gate, evaluation, speed, this card:
bash export/ship_default.sh $CKPT
#   = logdigit-train export $CKPT -o $OUT/logdigit_default.onnx --int8 --fp16 --eval-tiles 64 --threads $THREADS
#     cp $SHIP logdigit/models/logdigit_default.onnx
#     logdigit-train evaluate --onnx logdigit/models/logdigit_default.onnx --config $OUT/eval_config.yaml --out $OUT/eval
#     python bench/export_speed.py --checkpoint $CKPT --model $OUT/logdigit_default.onnx ${INT8_ARG[*]}
EOF
python -m export.model_card --model logdigit/models/logdigit_default.onnx \
    --report "$OUT/logdigit_default.export.json" --eval "$OUT/eval/eval.json" \
    --bench bench/results/export_speed.json --config "$RUN_DIR/config.yaml" \
    --commands "$OUT/commands.sh" --note "$NOTE" --limits "${LIMITS:-}" -o logdigit/models/MODEL_CARD.md
