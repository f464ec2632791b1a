#!/bin/bash
# data.channels=0 (auto; the task's default since 0.2.0) against grayscale (1, the old default)
# for `--task images` on a colour set: images3 (auto reads it as RGB), a 3,000-image stratified
# subset, the task's defaults otherwise (ResNet-18, 10 epochs, best validation epoch), 1 thread,
# seeds 0-2 (each its own split), the two arms of a seed run at once. Nothing is tuned. Prints
# channels, seed, best val macro-F1, test accuracy, test macro-F1.
#   bench/channels_auto.sh DIR/images3/cifar10_dog_automobile_ship.npz OUT_DIR
set -euo pipefail
A=${ARCHLAB:-.venv/bin/archlab}
NPZ=$1
OUT=$2
arm() {  # name seed channels
  run=$($A train --task images --data "$NPZ" --seed "$2" --set data.subset=3000 \
    --set data.channels="$3" --set train.threads=1 --set train.progress=off \
    --out "$OUT/$1" | tail -1)
  python3 -c "import csv, json; m = json.load(open('$run/metrics.json')); \
h = list(csv.DictReader(open('$run/history.csv'))); \
print('$1', $2, round(max(float(r['val_f1_macro']) for r in h), 4), \
round(m['test_accuracy'], 4), round(m['test_f1_macro'], 4))"
}
for s in 0 1 2; do
  arm auto "$s" 0 &
  arm grey "$s" 1
  wait
done
