#!/usr/bin/env bash
# Beauty on a lent GPU machine (the `device` tool), in one call: CUDA tests, a two-epoch
# SASRec-CE / EAGER side by side, then EAGER seeds in parallel to early stop (or the time left).
#   bash scripts/device_beauty.sh COMMIT SECONDS [SEEDS [STAGES]]
# SEEDS default 2024,2025,2026; STAGES default tests,speed,seeds.
# Needs, carried in ignored folders: .whl/ (recbole 1.2.1, pandas 2.3.3 and what the image
# lacks) and .devcarry/ (amazon-beauty.tar.xz, the behavior checkpoint, the item-code cache).
# JSONs and logs go to $OUT (fetched back); $1 names the commit (the copy's .git may lag its tree).
set -u
SEEDS=${3:-2024,2025,2026}; STAGES=${4:-tests,speed,seeds}
START=$(date +%s); END=$((START + $2))
. "$(dirname "$0")/device_env.sh" "$1" amazon-beauty
mkdir -p /tmp/codes && cp .devcarry/amazon-beauty-*.pt /tmp/codes/
[[ $STAGES == *tests* ]] && timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_eager.py -k "cuda or gathered" 2>&1 | tee $OUT/pytest_cuda.log | tail -15
COMMON="behavior_checkpoint=$PWD/.devcarry/SASRec-amazon-beauty-epoch48.pth code_cache_dir=/tmp/codes show_progress=False search_chunk_size=4096"
BENCH="python3 -m recbole_eager.experiments.benchmark --dataset amazon-beauty --results $OUT/results"
if [[ $STAGES == *speed* ]]; then
  echo "== side by side, two epochs each (the first warms CUDA up), alone on the GPU: $(( $(date +%s) - START )) s"
  timeout 240 $BENCH --models SASRec EAGER --tag gpu-speed-2epochs --set epochs=2 $COMMON > /tmp/speed.log 2>&1
  grep -E "epoch [0-9]+ (training|evaluating)|epochs,|Error" /tmp/speed.log
fi
[[ $STAGES == *seeds* ]] || exit 0
LEFT=$(( END - $(date +%s) ))
BUDGET=$(( LEFT - 60 ))  # the epoch under way when it runs out, then the test pass
echo "== EAGER seeds to early stop, concurrently: $(( $(date +%s) - START )) s; train_time_budget $BUDGET s"
for SEED in ${SEEDS//,/ }; do
  timeout $(( LEFT - 10 )) $BENCH --models EAGER --tag gpu-seed$SEED --threads 4 --set seed=$SEED train_time_budget=$BUDGET $COMMON > /tmp/seed$SEED.log 2>&1 &
done
wait
for SEED in ${SEEDS//,/ }; do echo "-- seed $SEED"; grep -E "epoch [0-9]+ (training|evaluating)|Error" /tmp/seed$SEED.log | tail -4; grep -E "^EAGER: " /tmp/seed$SEED.log; done
rm -f $OUT/results/amazon-beauty.md  # rebuilt here from the JSONs; $OUT returns at most 8 files
ls $OUT/results/runs
echo "== done: $(( $(date +%s) - START )) s"
