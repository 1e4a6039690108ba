#!/usr/bin/env bash
# Rebuilds the shipped default model models/railvision-n.{pt,onnx} from nothing but this repo
# (and ../shared/pretrained when present). The recipe and its figures are in models/railvision-n.md.
# Override the sizes for a GPU run, e.g.:
#   N_TRAIN=20000 EPOCHS=60 EXTRA_EPOCHS=0 MORE_HOURS=0 IMGSZ=640 FREEZE=0 DEVICE=0 scripts/build_default_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N_TRAIN=${N_TRAIN:-3000}
N_TEST=${N_TEST:-300}
EPOCHS=${EPOCHS:-5}
IMGSZ=${IMGSZ:-512}
FREEZE=${FREEZE:-10}
EXTRA_EPOCHS=${EXTRA_EPOCHS:-2}  # the shipped CPU model: a second, fresh-schedule run from the first one's best
MORE_HOURS=${MORE_HOURS:-1.85}  # ... and a third, of this many hours (its epoch count depends on the machine)
DEVICE=${DEVICE:-auto}
EXPORT_IMGSZ=${EXPORT_IMGSZ:-768}  # inference size: the shipped one was picked on the val split (see the card)
WORK=${WORK:-runs/default-model}
PRETRAINED=../shared/pretrained/yolo26n-coco-partial.pt
WEIGHTS=${WEIGHTS:-$([ -f "$PRETRAINED" ] && echo "$PRETRAINED" || echo yolo26n.yaml)}

# 1. synthetic training data and a separately seeded test set (same seed, same bytes)
[ -f "$WORK/synth-train/data.yaml" ] ||
  railvision synth --out "$WORK/synth-train" --n "$N_TRAIN" --seed 1 --imgsz 640 --workers 2 --val-fraction 0.06
[ -f "$WORK/synth-test/data.yaml" ] ||
  railvision synth --out "$WORK/synth-test" --n "$N_TEST" --seed 1001 --imgsz 640 --workers 2 --val-fraction 1.0

# 2. fine-tune from the partly COCO-pretrained YOLO26n with the mixed domain augmentation
rm -rf "$WORK/train"
railvision train --data "$WORK/synth-train/data.yaml" --weights "$WEIGHTS" --epochs "$EPOCHS" --imgsz "$IMGSZ" \
  --batch 16 --device "$DEVICE" --augment mixed --seed 0 --freeze "$FREEZE" --no-val --workers 2 \
  --project "$WORK" --name train 2>&1 | tee "$WORK/train.log"

BEST="$WORK/train/weights/best.pt"
if [ "$EXTRA_EPOCHS" -gt 0 ]; then
  rm -rf "$WORK/train2"
  railvision train --data "$WORK/synth-train/data.yaml" --weights "$BEST" --epochs "$EXTRA_EPOCHS" --imgsz "$IMGSZ" \
    --batch 16 --device "$DEVICE" --augment mixed --seed 0 --freeze "$FREEZE" --no-val --workers 2 \
    --project "$WORK" --name train2 2>&1 | tee "$WORK/train2.log"
  BEST="$WORK/train2/weights/best.pt"
fi
if [ "$MORE_HOURS" != 0 ]; then
  rm -rf "$WORK/train3"
  railvision train --data "$WORK/synth-train/data.yaml" --weights "$BEST" --epochs 10 --hours "$MORE_HOURS" \
    --imgsz "$IMGSZ" --batch 16 --device "$DEVICE" --augment mixed --seed 0 --freeze "$FREEZE" --no-val --workers 2 \
    --project "$WORK" --name train3 2>&1 | tee "$WORK/train3.log"
  BEST="$WORK/train3/weights/best.pt"
fi

# 3. ship: the .pt for users' fine-tuning, the ONNX (end-to-end head, dynamic shapes) for the engine
mkdir -p models
cp "$BEST" models/railvision-n.pt
railvision export --weights models/railvision-n.pt --imgsz "$EXPORT_IMGSZ" --dynamic --head end2end \
  --out models/railvision-n.onnx --calib "$WORK/synth-test/images/val"

# 4. the default threshold: lowest counting error on the training set's val split (never trained on)
railvision eval --model models/railvision-n.onnx --data "$WORK/synth-train/data.yaml" --out "$WORK/calib" \
  --set-default-conf

# 5. the card's table: the separately seeded held-out test set, at that threshold
railvision eval --model models/railvision-n.onnx --data "$WORK/synth-test/data.yaml" --out "$WORK/eval"

# 6. false alarms on real photos that show no rail vehicle: the synthetic scenes' backdrops (so seen in
#    training, not held out), at the model's default threshold; every detection is a false alarm
for view in ground overhead; do
  if [ -d "../shared/backgrounds/$view" ]; then
    railvision label "../shared/backgrounds/$view" --out "$WORK/negatives-$view" --format csv --no-progress
  fi
done
