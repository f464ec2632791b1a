#!/bin/bash
# optim.schedule=none (the image and text tasks' default: a constant rate, early stopping)
# against cosine decay, each task as `--task` runs it otherwise: images3 (a 1,500-image subset,
# colour) and the airline tweets, 10 epochs, seeds 0-2 (each its own split), 1 thread per arm,
# the two arms of a seed at once. Nothing is tuned; the runs keep their best validation epoch.
# Prints arm, seed, best val macro-F1, test accuracy, test macro-F1, epochs run.
#   bench/schedule_cosine.sh DATA_DIR OUT_DIR   (DATA_DIR holds images3/ and twitter_airline/)
set -euo pipefail
A=${ARCHLAB:-.venv/bin/archlab}
NPZ=$1/images3/cifar10_dog_automobile_ship.npz
TW=$1/twitter_airline/Tweets.csv
OUT=$2
arm() {  # name seed args...
  n=$1; s=$2; shift 2
  r=$($A train "$@" --seed "$s" --set train.threads=1 --set train.progress=off \
    --out "$OUT/$n" | tail -1)
  python3 -c "import csv, json; m = json.load(open('$r/metrics.json')); \
h = list(csv.DictReader(open('$r/history.csv'))); \
print('$n', $s, round(max(float(x['val_f1_macro']) for x in h), 4), \
round(m['test_accuracy'], 4), round(m['test_f1_macro'], 4), len(h))"
}
for s in 0 1 2; do
  arm img-none "$s" --task images --data "$NPZ" --set data.subset=1500 &
  arm img-cosine "$s" --task images --data "$NPZ" --set data.subset=1500 \
    --set optim.schedule=cosine
  wait
done
for s in 0 1 2; do
  arm txt-none "$s" --task text --data "$TW" &
  arm txt-cosine "$s" --task text --data "$TW" --set optim.schedule=cosine
  wait
done
