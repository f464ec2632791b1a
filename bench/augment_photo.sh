#!/bin/bash
# reg.augment=photo (milder random-resized crop + flip + one TrivialAugment op per image)
# against the translate default on a small photo set: images3 in colour (data.channels=3),
# a 1,500-image stratified subset (1,050 training images), images-resnet18 as it is (15 epochs,
# 1 thread), seeds 0-2 (each its own split). Nothing is tuned; the runs keep their best
# validation epoch. Prints augment, seed, val macro-F1 at the scored epoch, test accuracy,
# test macro-F1, training seconds.
#   bench/augment_photo.sh DIR/images3/cifar10_dog_automobile_ship.npz OUT_DIR
set -euo pipefail
A=${ARCHLAB:-.venv/bin/archlab}
NPZ=$1
OUT=$2
for s in 0 1 2; do
  for aug in translate photo; do
    run=$($A train --preset images-resnet18 --data "$NPZ" --seed "$s" --set data.channels=3 \
      --set data.subset=1500 --set reg.augment=$aug --set train.threads=1 \
      --set train.progress=off --out "$OUT/$aug" | tail -1)
    python3 -c "import csv, json; m = json.load(open('$run/metrics.json')); \
h = list(csv.DictReader(open('$run/history.csv'))); e = m['scored_epoch']; \
print('$aug', $s, round(float(h[e - 1]['val_f1_macro']), 4), round(m['test_accuracy'], 4), \
round(m['test_f1_macro'], 4), round(m['train_seconds']))"
  done
done
