#!/usr/bin/env bash
# what the device tool ran (one NVIDIA H200, torch 2.11.0+cu130), 2026-12-04:
#   call 1: bash benchmarks/he2015_gpu.sh            (530 s training limit: 20-layer nets done, 56-layer at 53.3k steps)
#   call 2: TRAIN_S=200 NETS='resnet56 plain56' bash benchmarks/he2015_gpu.sh   (resumed to 64k)
# first: python benchmarks/jpeg_pack.py pack ../shared/data/cifar10-jpg .gpu/cifar10-jpg.npz (carried as .gpu)
# He 2015 Fig. 6 nets at full length on one GPU; partial runs come back resumable.
set -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 benchmarks/jpeg_pack.py unpack .gpu/cifar10-jpg.npz /tmp/cifar10-jpg
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 SKIPLAB_CACHE=/tmp/skcache
timeout -s TERM -k 25 ${TRAIN_S:-530} python3 benchmarks/he2015_table6.py --data cifar10:/tmp/cifar10-jpg \
  --nets ${NETS:-resnet56 plain56 resnet20 plain20} --out /tmp/he --mps --no-report 2>&1 | tee "$OUT/launcher.log"
echo "launcher exit ${PIPESTATUS[0]}"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
cd /tmp/he && for d in */; do n=${d%/}; tar cf "$OUT/$n.tar" "$n" "$n.log"; done
tail -n 3 /tmp/he/*.log
