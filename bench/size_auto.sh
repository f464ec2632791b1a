#!/bin/bash
# data.size=0 (auto; the task's default since 0.2.0) against 32 (the old default) for
# `--task images` on a photo folder (bench/photo_proxy.py writes one; auto reads its photos at
# 64), the task's defaults otherwise (ResNet-18, 10 epochs, best validation epoch), 1 thread,
# seeds 0-2, the two arms run at once. Nothing is tuned. Prints the arm, seed, size, best val
# macro-F1, test accuracy, test macro-F1 and training seconds.
#   bench/size_auto.sh PHOTO_FOLDER OUT_DIR
set -euo pipefail
A=${ARCHLAB:-.venv/bin/archlab}
DATA=$1
OUT=$2
arm() {  # name size
  for s in 0 1 2; do
    run=$($A train --task images --data "$DATA" --seed "$s" --set data.size="$2" \
      --set train.threads=1 --set train.progress=off --out "$OUT/$1" | tail -1)
    python3 -c "import csv, json; m = json.load(open('$run/metrics.json')); \
d = json.load(open('$run/data.json')); h = list(csv.DictReader(open('$run/history.csv'))); \
print('$1', $s, d['size'], round(max(float(r['val_f1_macro']) for r in h), 4), \
round(m['test_accuracy'], 4), round(m['test_f1_macro'], 4), round(m['train_seconds']))"
  done
}
arm auto 0 &
arm fixed32 32
wait
