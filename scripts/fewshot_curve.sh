#!/usr/bin/env bash
# How well fine-tuning on a few of one's own photos works: `railvision train` from the shipped
# models/railvision-n.pt on K photos of a real set (fixed splits and seeds), scored on the set's other photos.
#   scripts/fewshot_curve.sh [DATA.yaml]        (default ../shared/realdev/data.yaml)
# Writes $WORK/fewshot.csv (one row per K and seed) and prints it. Any other `railvision train` flags can be
# given in TRAIN_ARGS; the defaults are what `railvision train` does out of the box.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${1:-../shared/realdev/data.yaml}
KS=${KS:-"10 30"}
SEEDS=${SEEDS:-0}
WORK=${WORK:-runs/fewshot}
WEIGHTS=${WEIGHTS:-models/railvision-n.pt}
TRAIN_ARGS=${TRAIN_ARGS:-}
[ -f "$DATA" ] || { echo "no dataset at $DATA" >&2; exit 2; }

mkdir -p "$WORK"
echo "k,seed,train_images,val_images,mAP50,agnostic_AP50,count_error,total_count_error,seconds" > "$WORK/fewshot.csv"
for k in $KS; do
  for seed in $SEEDS; do
    split="$WORK/k$k-s$seed"
    rm -rf "$split" "$WORK/runs/k$k-s$seed"
    railvision data split "$DATA" --train "$k" --seed "$seed" --out "$split/data"
    start=$(date +%s)
    # shellcheck disable=SC2086
    railvision train --data "$split/data/data.yaml" --weights "$WEIGHTS" --seed "$seed" --no-val \
      --project "$WORK/runs" --name "k$k-s$seed" $TRAIN_ARGS > "$split/train.log" 2>&1
    seconds=$(($(date +%s) - start))
    railvision eval --model "$WORK/runs/k$k-s$seed/weights/last.pt" --data "$split/data/data.yaml" \
      --out "$split/eval" > "$split/eval.log"
    python3 - "$split" "$k" "$seed" "$seconds" >> "$WORK/fewshot.csv" <<'EOF'
import json, sys
from pathlib import Path
split, k, seed, seconds = Path(sys.argv[1]), *sys.argv[2:]
m = json.loads((split / "eval" / "metrics.json").read_text())["overall"]
train = len(list((split / "data" / "images" / "train").iterdir()))
keys = ("mAP50", "agnostic_AP50", "count_error", "total_count_error")
print(",".join([k, seed, str(train), str(m["images"]), *(f"{m[key]:.3f}" for key in keys), seconds]))
EOF
  done
done
cat "$WORK/fewshot.csv"
