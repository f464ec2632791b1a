#!/usr/bin/env bash
# One short check for a lent GPU machine, then report
#   1. ResNet-18 on images3: epoch time and time from process start (data loading included) to
#      >= 95% test accuracy, eager and with torch.compile,
#   2. VGG-13 on images3: epoch time and time to >= 90% test accuracy,
#   3. the Trainer's overhead against a bare loop on CUDA (bench/overhead.py),
#   4. only with REPRODUCE=1: the full profile's wall time of the sales and the text parts
#      (archlab reproduce; its report needs torchinfo, which the H200 image lacks: carry it).
# Usage: DATA=/path/to/data bash bench/gpu.sh   (results land in $OUT, else bench-gpu/)
# DATA holds images3/ (and walmart/, twitter_airline/ for 3-4); ../shared/data does not travel to
# the GPU machine, so copy what is needed into an ignored folder of the repo and carry it.
# It uses the machine's own CUDA torch (never a CPU wheel over it) and archlab from this tree.
set -euo pipefail
DATA=${DATA:-../shared/data}
RES=${OUT:-bench-gpu}
PY=${PY:-python3}
mkdir -p "$RES"

# archlab from this tree, installed or not. No pip: an editable install needs setuptools from
# the network, which the GPU machine cannot reach. (A `python -c "import archlab"` probe passes
# in the repo root, where the cwd is on sys.path, yet `python bench/x.py` would not find it.)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
$PY - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda)
assert torch.cuda.is_available(), "no CUDA device: this script is for a GPU machine"
print(torch.cuda.get_device_name(0))
EOF
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true

IMAGES=$DATA/images3/cifar10_dog_automobile_ship.npz
[ -f "$IMAGES" ] || { echo "no $IMAGES: set DATA to a folder holding images3/" >&2; exit 2; }
# The GPU recipe: bigger batches, bf16 autocast (train.amp=auto), channels_last, data on the GPU.
# The presets' learning rates were tuned on CPU at batch 64-128; no GPU was lent while writing
# this, so batch size and lr here are a starting point to tune with `archlab sweep`.
GPU_SETS=(--set train.batch_size=256 --set train.eval_batch_size=2048
          --set train.channels_last=true)
$PY bench/time_to_accuracy.py --preset images-resnet18 --data "$IMAGES" --target 0.95 \
  --epochs 40 "${GPU_SETS[@]}" --json "$RES/resnet18.json" | tee "$RES/resnet18.log"
$PY bench/time_to_accuracy.py --preset images-resnet18 --data "$IMAGES" --target 0.95 \
  --epochs 40 "${GPU_SETS[@]}" --set train.compile=true --json "$RES/resnet18-compile.json" \
  | tee "$RES/resnet18-compile.log"
$PY bench/time_to_accuracy.py --preset images-vgg13 --data "$IMAGES" --target 0.90 \
  --epochs 30 "${GPU_SETS[@]}" --json "$RES/vgg13.json" | tee "$RES/vgg13.log"

$PY bench/overhead.py --device cuda --data-dir "$DATA" | tee "$RES/overhead.txt"

if [ "${REPRODUCE:-0}" = 1 ]; then
  for part in sales text; do
    start=$(date +%s)
    $PY -m archlab reproduce --data-dir "$DATA" --profile full --parts "$part" \
      --out "$RES/reproduce-$part" > "$RES/reproduce-$part.log" 2>&1
    echo "full profile, $part part: $(( $(date +%s) - start )) s" | tee -a "$RES/summary.txt"
  done
fi
