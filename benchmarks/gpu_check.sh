#!/usr/bin/env bash
# One prepared check of what we want to know from a lent GPU (H100/H200), in under 9 minutes:
#   bash benchmarks/gpu_check.sh              # on the GPU
#   bash benchmarks/gpu_check.sh --dry-run    # the same steps, tiny, on the CPU (or DRY_RUN=1)
# 1-2. inference fp32 / bf16 / bf16 compiled at batch 256; training img/s at steady state from the FER+
#      image files and from the decoded-once cache, eager and compiled; peak GPU memory; host syncs per
#      training step (benchmarks/gpu_check.py)
# 3.   a time-boxed full-size poster_var FER+ run (bf16, --data-cache) and its evaluation on the test split
# Each stage has its share of the 9 minutes (a stage cut short keeps what it wrote). Writes
# $OUT/gpu_check.json (default runs/gpu_check/) and $OUT/gpu_check.log, and prints a table.
# FER+ is read from $FERPLUS (default ../shared/data/ferplus); DATASET=synthetic trains on synthetic faces.
# IMAGE_SIZE (default 112, the native side) is the network's input side in every stage.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DRY=${DRY_RUN:-0}
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-runs/gpu_check}
FERPLUS=${FERPLUS:-../shared/data/ferplus}
DATASET=${DATASET:-ferplus}
WORKERS=${WORKERS:-12}
RUN_MINUTES=${RUN_MINUTES:-1.5}
IMAGE_SIZE=${IMAGE_SIZE:-112}
mkdir -p "$OUT"
LOG=$OUT/gpu_check.log
: > "$LOG"
t0=$SECONDS

if [ "$DRY" = 1 ]; then
    check_flags=(--dry-run)
    run_flags=(--model poster_var_tiny --device cpu --batch-size 8 --epochs 1 --train-size 32 --valid-size 8 --workers 0)
    eval_flags=(--num-samples 2 --size 8 --device cpu)
    limits=(1800 1800 600)  # the CPU is slow, and the dry run checks the steps, not the time box
else
    check_flags=(--workers "$WORKERS")
    run_flags=(--model poster_var --device cuda --bf16 --batch-size 128 --lr 5e-4 --lr-schedule cosine
               --warmup-steps 200 --epochs "${RUN_EPOCHS:-4}" --max-minutes "$RUN_MINUTES" --workers "$WORKERS")
    eval_flags=(--num-samples 30 --num-workers "$WORKERS")
    limits=(300 "$(python3 -c "print(int(60 * $RUN_MINUTES) + 75)")" 60)  # seconds: stages 1-2, run, evaluation
fi
data_flags=(--dataset "$DATASET" --image-size "$IMAGE_SIZE")
[ "$DATASET" = ferplus ] && data_flags+=(--data-root "$FERPLUS")

stage() {  # stage SECONDS CMD...: run a stage within its share of the time; a stage cut short is logged
    local limit=$1 rc=0
    shift
    timeout --signal=INT --kill-after=15 "$limit" "$@" || rc=$?
    [ "$rc" = 0 ] || echo "(stage ended with status $rc; limit ${limit} s)"
}

echo "== steps 1-2: inference and training throughput" | tee -a "$LOG"
stage "${limits[0]}" "$PY" benchmarks/gpu_check.py "${check_flags[@]}" --dataset "$DATASET" --data-root "$FERPLUS" \
    --image-size "$IMAGE_SIZE" --out "$OUT" 2>>"$LOG" | tee -a "$LOG"

echo "== step 3: time-boxed full-size run and its evaluation" | tee -a "$LOG"
run=$OUT/run
t_run=$SECONDS
stage "${limits[1]}" "$PY" scripts/svi_train.py "${data_flags[@]}" "${run_flags[@]}" --data-cache "$OUT/data-cache" \
    --out "$run" --overwrite 2>>"$LOG" | grep -E "^(epoch|test|stopped|data cache|\(stage)" | tee -a "$LOG" || true
run_s=$((SECONDS - t_run))
checkpoint=$run/best.pt
[ -f "$checkpoint" ] || checkpoint=$run/last.pt
eval_data=()
[ "$DATASET" = ferplus ] && eval_data=(--data-root "$FERPLUS")
stage "${limits[2]}" "$PY" -m evaluation.calibration --checkpoint "$checkpoint" --split test --calibrate-split valid \
    --no-progress --formats png --out "$run/eval" "${eval_data[@]}" "${eval_flags[@]}" 2>>"$LOG" \
    | tail -n 3 | tee -a "$LOG"

"$PY" - "$OUT/gpu_check.json" "$run" "$run_s" "$((SECONDS - t0))" <<'PY' | tee -a "$LOG"
import json, sys
from pathlib import Path

path, run, run_s, total_s = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
report = json.loads(path.read_text()) if path.exists() else {"rows": [], "gpu": None}
final = json.loads((run / "final.json").read_text()) if (run / "final.json").exists() else {}
evaluation = json.loads((run / "eval" / "metrics.json").read_text()) if (run / "eval" / "metrics.json").exists() else {}
report["full_run"] = {"wall_s": run_s, **final}
report["evaluation"] = {k: evaluation.get(k) for k in ("num_examples", "accuracy", "balanced_accuracy", "nll", "ece")}
report["total_wall_s"] = total_s
path.write_text(json.dumps(report, indent=2))


def cell(value, fmt):
    return "-" if value is None else format(value, fmt)


print(f"\n{'step':<28} {'batch':>6} {'img/s':>10} {'peak GPU MB':>12} {'syncs/step':>11}")
for r in report["rows"]:
    print(f"{r['step']:<28} {r['batch']:>6} {r['images_per_s']:>10.1f} {cell(r.get('peak_gpu_mb'), '.0f'):>12} "
          f"{cell(r.get('syncs_per_step'), '.2f'):>11}")
if final:
    print(f"full run ({run_s} s with its test): test accuracy {final['test/accuracy']:.4f}, NLL {final['test/nll']:.4f}, "
          f"ECE {final['test/ece']:.4f}, tested {final.get('tested')}, {final.get('stopped', 'all epochs done')}")
else:
    print(f"full run: no final.json after {run_s} s (see the log)")
if evaluation:
    print(f"evaluation ({evaluation.get('num_examples')} faces): accuracy {cell(evaluation.get('accuracy'), '.4f')}, "
          f"NLL {cell(evaluation.get('nll'), '.4f')}, ECE {cell(evaluation.get('ece'), '.4f')}")
print(f"total {total_s} s on {report.get('gpu') or 'the CPU (dry run)'}; written to {path}")
PY
