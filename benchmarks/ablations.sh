#!/usr/bin/env bash
# The ablation runs behind RESULTS.md, one after another on the CPU.
#
#   bash benchmarks/ablations.sh synthetic            # mixture recovery per guide (~15 min)
#   bash benchmarks/ablations.sh ferplus [MINUTES]    # paper's Table 3 at a common time box (~8 min per run)
#
# FER+ is read from $FERPLUS (default ../shared/data/ferplus). Outputs go to runs/ablations/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=runs/ablations
FERPLUS=${FERPLUS:-../shared/data/ferplus}

evaluate() {  # evaluate <run dir> <extra evaluation flags...>
    local run=$1; shift
    "$PY" -m evaluation.calibration --checkpoint "$run/best.pt" --split test --calibrate-split valid \
        --num-samples 30 --no-progress --formats png --out "$run/eval" "$@" | tail -n 3
}

synthetic() {
    for guide in normal lowrank delta; do
        run=$OUT/synthetic-$guide
        "$PY" scripts/svi_train.py --guide "$guide" --out "$run" 2>/dev/null | grep -E "^(epoch|test)"
        evaluate "$run" --size 2000 --reference mixture
    done
}

ferplus() {
    local minutes=${1:-6}
    local common=(--dataset ferplus --data-root "$FERPLUS" --lr 5e-4 --epochs 1 --max-minutes "$minutes")
    declare -A variants=(
        [poster_var_tiny]="--model poster_var_tiny --guide normal"
        [no_layer_embedding]="--model poster_var_tiny --guide normal --no-layer-embedding"
        [delta]="--model poster_var_tiny --guide delta"
        [lowrank]="--model poster_var_tiny --guide lowrank"
        [poster_pp_tiny]="--model poster_pp_tiny --guide delta"
    )
    for name in poster_var_tiny no_layer_embedding delta lowrank poster_pp_tiny; do
        run=$OUT/ferplus-$name
        # shellcheck disable=SC2086 # the variant's flags are meant to split
        "$PY" scripts/svi_train.py "${common[@]}" ${variants[$name]} --out "$run" 2>/dev/null | grep -E "^(epoch|test)"
        evaluate "$run" --data-root "$FERPLUS"
    done
}

case "${1:-}" in
    synthetic) synthetic ;;
    ferplus) ferplus "${2:-6}" ;;
    *) echo "usage: $0 synthetic | ferplus [MINUTES]" >&2; exit 2 ;;
esac
