#!/usr/bin/env bash
# A run list (benchmark --runs) on a lent GPU machine, every line at once; long lists over
# several calls: call again with the same arguments while the machine is warm, and killed runs
# continue from their last epoch (saved/resume/), finished ones are skipped (bench/results/).
#   bash scripts/device_runs.sh COMMIT SECONDS DATASET LIST JOBS RUN_BUDGET [KEY=VALUE ...]
# SECONDS bounds this call; JOBS runs at a time (0: all); RUN_BUDGET is each run's
# train_time_budget over all calls; KEY=VALUE pairs go to every run (benchmark --set). Keep the
# arguments the same in every call: they are part of each run's resume key.
# Carried (ignored folders): .whl/ (cp312 wheels of recbole 1.2.1, pandas 2.3.3, k-means-constrained
# 0.9.1 with ortools, for numpy 2; vector-quantize-pytorch 1.32.0 and its needs: 44 MB),
# .devcarry/DATASET.tar.xz (DATASET/DATASET.inter, .item) and .devcarry/DATASET-semantic.npz,
# made here by (the image has no sentence-transformers weights)
#   python -m recbole_eager.codes --dataset=DATASET --use_behavior_stream=False --export=.devcarry
# With the semantic file, Beauty's carry is over 64 MiB: carry .whl and the data in a first call,
# which installs and trains the behavior models and stops; then .devcarry alone. The behavior
# checkpoints the list names are trained first, on the GPU, if missing:
#   behavior/SASRec-DATASET-epoch30.pth     SASRec-CE, 30 epochs (EAGER's behavior_epochs)
#   behavior/SASRec-DATASET-item-order.pth  SASRec-CE in item order, 31 epochs (the CPU run
#                                           SASRec-item-order), test metrics each epoch
# Any other behavior checkpoint the list names must be carried; the script stops if it is not.
# Each call returns $OUT/runs.tgz: bench/results (JSONs, table) and the logs. Not yet run on a GPU.
set -u
START=$(date +%s); END=$((START + $2)); DATASET=$3; LIST=$4; JOBS=$5; RUN_BUDGET=$6; shift 6; EXTRA="$*"
LINES=$(grep -vE '^\s*(#|$)' "$LIST")
[ "$JOBS" = 0 ] && JOBS=$(wc -l <<< "$LINES")
. "$(dirname "$0")/device_env.sh" "$1" "$DATASET"
LOGS=bench/logs; mkdir -p $LOGS behavior
SEMANTIC=.devcarry/$DATASET-semantic.npz

behavior() {  # FILE [config key=value ...]: train SASRec-CE on DATASET unless FILE exists
  local file=$1; shift
  [ -f "$file" ] && return
  echo "== behavior model $file ($*): $(( $(date +%s) - START )) s"
  python3 - "$file" "$@" > $LOGS/$(basename "$file" .pth).log 2>&1 <<PY || { tail -5 $LOGS/$(basename "$file" .pth).log; exit 1; }
import shutil, sys, yaml
from recbole_eager.quick_start import run_recbole_eager
file, pairs, sys.argv = sys.argv[1], sys.argv[2:], sys.argv[:1]  # RecBole reads sys.argv
extra = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in pairs)}
result = run_recbole_eager(model="SASRec", dataset="$DATASET", config_dict={"show_progress": False, **extra})
shutil.copy(result["saved_model_file"], file)
print("behavior model:", result["epochs"], "epochs, best valid", result["best_valid_result"])
PY
  tail -1 $LOGS/$(basename "$file" .pth).log
}
for FILE in $(grep -oE 'behavior_checkpoint=[^ ]+' <<< "$LINES $EXTRA" | cut -d= -f2 | sort -u); do
  case $FILE in
    behavior/SASRec-$DATASET-epoch30.pth) behavior "$FILE" epochs=30 ;;
    behavior/SASRec-$DATASET-item-order.pth) behavior "$FILE" epochs=31 sequence_order=item report_best_test=True ;;
    *) [ -f "$FILE" ] || { echo "$LIST names behavior_checkpoint $FILE: not here and not one this script trains; carry it"; exit 1; } ;;
  esac
done

[ -f $SEMANTIC ] || { echo "setup done; no $SEMANTIC: call again carrying it (this script's header)"; exit 0; }
SET="$EXTRA semantic_embedding_file=$SEMANTIC train_time_budget=$RUN_BUDGET show_progress=False search_chunk_size=4096"
echo "== item codes, once per setting, in parallel: $(( $(date +%s) - START )) s"
CODES=$(while read -r _ PAIRS; do
  echo $(tr ' ' '\n' <<< "$PAIRS $EXTRA" | grep -E '^(kmeans_|code_method=|rqvae_|behavior_checkpoint=|sequence_order=)' | sort)
done <<< "$LINES" | sort -u)
while read -r CODE; do
  python3 -m recbole_eager.codes --dataset=$DATASET $(for p in $CODE semantic_embedding_file=$SEMANTIC; do echo "--$p"; done) \
    > "$LOGS/codes-$(echo "$CODE" | md5sum | cut -c1-8).log" 2>&1 &
done <<< "$CODES"
wait
grep -h -E "^(cache|behavior|semantic):|Error" $LOGS/codes-*.log

echo "== $LIST, $JOBS at a time, run budget $RUN_BUDGET s: $(( $(date +%s) - START )) s"
timeout $(( END - $(date +%s) - 40 )) python3 -m recbole_eager.experiments.benchmark --dataset $DATASET --models EAGER \
  --results bench/results --runs "$LIST" --jobs $JOBS --threads 1 --logs $LOGS --set $SET
pkill -f recbole_eager.experiments.benchmark; sleep 3
grep -h -E "^EAGER: |Error" $LOGS/EAGER-*.log
tar -czf $OUT/runs.tgz bench/results $LOGS
echo "== done: $(( $(date +%s) - START )) s; finished runs: $(ls bench/results/runs 2>/dev/null | wc -l)"
