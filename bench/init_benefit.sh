#!/bin/bash
# model.init's benefit on a small task of other classes: ResNet-18 (images-resnet18, 4 epochs,
# 1 thread) on scikit-learn's bundled digits at 32x32 (10 classes), from scratch and started
# from a 4-epoch run on 3,000 images3 images (3 other classes), seeds 0-2. Nothing is tuned:
# the preset's recipe as it is, the same epochs for both. Prints mode, seed, test accuracy,
# test macro-F1, scored epoch, training seconds.
#   bench/init_benefit.sh DIR/images3/cifar10_dog_automobile_ship.npz OUT_DIR
set -euo pipefail
A=${ARCHLAB:-.venv/bin/archlab}
NPZ=$1
OUT=$2
COMMON=(--set train.threads=1 --set train.progress=off --set train.epochs=4)
PRE=$($A train --preset images-resnet18 --data "$NPZ" --set data.subset=3000 "${COMMON[@]}" \
  --out "$OUT/pre" | tail -1)
echo "pretrained: $PRE"
for s in 0 1 2; do
  for mode in scratch init; do
    extra=()
    [ "$mode" = init ] && extra=(--set "model.init=$PRE")
    run=$($A train --preset images-resnet18 --set data.size=32 "${COMMON[@]}" --seed "$s" \
      "${extra[@]}" --out "$OUT/digits-$mode" | tail -1)
    python3 -c "import json; m = json.load(open('$run/metrics.json')); print('$mode', $s, \
m['test_accuracy'], m['test_f1_macro'], m['scored_epoch'], round(m['train_seconds']))"
  done
done
