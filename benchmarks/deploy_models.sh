#!/usr/bin/env bash
# Trains the CIFAR-10 checkpoints that the deployment targets start from:
# cifar_resnet56 option A (teacher, pruning, int8), cifar_resnet20 seeds 0-2 (the scratch
# students that the distilled ones pair with), cifar_resnet56 option B (pruning) and fast_cifar.
# He 2015's recipe shortened to 7,820 steps (20 epochs of all 50k training images), lr /10 at
# 50 % and 75 %, evaluated on the test split. Resumable: run it again and every run continues
# from its last.pt (written every 500 steps); finished runs (a DONE file) are skipped.
#
#   bash benchmarks/deploy_models.sh [OUT [KEEP [NAME ...]]]   # OUT defaults to runs/deploy-models
# NAMEs (e.g. resnet56_B fast_cifar) limit the run to those models; without them all are trained.
# With KEEP (e.g. docs/evidence/deploy-models), each finished run is also copied there with its
# checkpoint stripped of the optimiser (benchmarks/keep_run.py), small enough to commit, and
# a run already kept there is not trained again: evidence survives a machine that is gone.
# then: python benchmarks/deploy_compress.py --models OUT
set -u
cd "$(dirname "$0")/.."
OUT=${1:-runs/deploy-models}
KEEP=${2:-}
ONLY=" ${*:3} "
SK=".venv/bin/skiplab"
DATA="cifar10:../shared/data/cifar10-jpg"
HE="--config configs/he2015_cifar.yaml --data $DATA --val-size 0 --eval-split test --steps 7820 --milestones 3910 5865 --milestone-unit step --checkpoint-every 500 --no-progress"
keep() { [ -n "$KEEP" ] && [ -f "$OUT/$1/DONE" ] && [ ! -f "$KEEP/$1/DONE" ] &&
  .venv/bin/python benchmarks/keep_run.py "$OUT/$1" "$KEEP/$1"; return 0; }
run() { name=$1; shift
  if [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $name "* ]]; then return; fi
  if [ -n "$KEEP" ] && [ -f "$KEEP/$name/DONE" ]; then echo "kept $name"; return; fi
  if [ -f "$OUT/$name/DONE" ]; then echo "skip $name"; keep "$name"; return; fi
  mkdir -p "$OUT/$name"; echo "== $name $(date)"
  "$@" >> "$OUT/$name.log" 2>&1 && touch "$OUT/$name/DONE"
  echo "== $name rc=$? $(date) load $(cut -d' ' -f1-3 /proc/loadavg)"; keep "$name"; }
run resnet56_A $SK train $HE --model cifar_resnet56 --out "$OUT/resnet56_A" --resume
for s in 0 1 2; do
  run resnet20_s$s $SK train $HE --model cifar_resnet20 --seed $s --out "$OUT/resnet20_s$s" --resume
done
run resnet56_B $SK train $HE --model cifar_resnet56 --model-kwargs '{shortcut: B}' --out "$OUT/resnet56_B" --resume
# last: it is the net the int8 calibration rule was chosen on (2026-12-02), the int8 check's second net
run fast_cifar .venv/bin/python benchmarks/cifar10_time_to_accuracy.py --nproc 2 --out "$OUT/fast_cifar"
echo "all done $(date)"
