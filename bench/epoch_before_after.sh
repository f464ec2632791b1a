#!/bin/bash
# A preset's epoch time at an earlier commit and at this tree, alternated (ratios in one run on
# a shared machine), 1 thread, N epochs each, R rounds; prints epoch_seconds_mean per run.
#   bash bench/epoch_before_after.sh REV PRESET DATA [EPOCHS] [ROUNDS]
# e.g. bash bench/epoch_before_after.sh 828c60c sales-gru ../shared/data/walmart 4 2
set -euo pipefail
REV=$1; PRESET=$2; DATA=$(realpath "$3"); EPOCHS=${4:-4}; ROUNDS=${5:-2}
HERE=$(cd "$(dirname "$0")/.." && pwd); PY=$HERE/.venv/bin/python
BEFORE=$(mktemp -d); OUT=$(mktemp -d)
git -C "$HERE" worktree add --detach "$BEFORE" "$REV" -q
trap 'git -C "$HERE" worktree remove --force "$BEFORE"; rm -rf "$OUT"' EXIT
for r in $(seq "$ROUNDS"); do
  for side in before after; do
    root=$HERE; [ $side = before ] && root=$BEFORE
    (cd "$root" && PYTHONPATH=$root $PY -m archlab train --preset "$PRESET" --data "$DATA" \
      --epochs "$EPOCHS" --set train.threads=1 --set train.progress=off \
      --set reg.early_stop=false --out "$OUT/$side-$r" > /dev/null 2>&1)
    $PY -c "import json,glob; m=json.load(open(glob.glob('$OUT/$side-$r/*/metrics.json')[0])); \
print('$side', $r, round(m['epoch_seconds_mean'], 2), 's/epoch over', m['epochs_run'], 'epochs')"
  done
done
