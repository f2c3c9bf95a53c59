#!/usr/bin/env bash
# The ablation runs behind RESULTS.md, one after another on the CPU.
#
#   bash benchmarks/ablations.sh synthetic            # mixture recovery per guide (~15 min)
#   bash benchmarks/ablations.sh likelihoods          # each guide x likelihood on synthetic votes (~25 min)
#   bash benchmarks/ablations.sh ferplus [MINUTES]    # paper's Table 3 at a common time box (~8 min per run)
#   bash benchmarks/ablations.sh ferplus-gpu [EPOCHS [VARIANT...]]
#                                                     # the full-size networks on one CUDA GPU, bf16
#
# FER+ is read from $FERPLUS (default ../shared/data/ferplus); $EXTRA adds flags to every FER+
# run (EXTRA="--seed 1" for a repeat). Outputs go to $OUT (default runs/ablations/); each run
# replaces an earlier one in its folder (--overwrite), so the script can be re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/ablations}
FERPLUS=${FERPLUS:-../shared/data/ferplus}

evaluate() {  # evaluate <run dir> <extra evaluation flags...>
    local run=$1; shift
    "$PY" -m evaluation.calibration --checkpoint "$run/best.pt" --split test --calibrate-split valid \
        --num-samples 30 --no-progress --formats png --out "$run/eval" "$@" | tail -n 3
}

synthetic() {
    for guide in normal lowrank delta; do
        run=$OUT/synthetic-$guide
        "$PY" scripts/svi_train.py --overwrite --guide "$guide" --out "$run" 2>/dev/null | grep -E "^(epoch|test)"
        evaluate "$run" --size 2000 --reference mixture
    done
}

# What the intensity spread means under each guide and likelihood: short synthetic runs (the
# faces carry 10 simulated annotator votes), each scored on 1,000 held-out faces.
likelihoods() {
    for guide in normal lowrank delta; do
        for likelihood in categorical multinomial dirmult; do
            run=$OUT/likelihood-$guide-$likelihood
            "$PY" scripts/svi_train.py --overwrite --guide "$guide" --likelihood "$likelihood" --train-size 1600 --epochs 2 \
                ${EXTRA:-} --out "$run" 2>/dev/null | grep -E "^test"
            evaluate "$run" --size 1000
        done
    done
    "$PY" benchmarks/likelihood_table.py "$OUT"
}

VARIANTS=(poster_var no_layer_embedding delta lowrank poster_pp)

variant_flags() {  # variant_flags NAME SIZE: one Table 3 variant's flags; SIZE is "" (full) or _tiny
    case $1 in
        poster_var) echo "--model poster_var$2 --guide normal" ;;
        no_layer_embedding) echo "--model poster_var$2 --guide normal --no-layer-embedding" ;;
        delta) echo "--model poster_var$2 --guide delta" ;;
        lowrank) echo "--model poster_var$2 --guide lowrank" ;;
        poster_pp) echo "--model poster_pp$2 --guide delta" ;;
        *) echo "unknown variant $1; known: ${VARIANTS[*]}" >&2; exit 2 ;;
    esac
}

ferplus() {
    local minutes=${1:-6}
    local common=(--dataset ferplus --data-root "$FERPLUS" --lr 5e-4 --epochs 1 --max-minutes "$minutes")
    for name in "${VARIANTS[@]}"; do
        run=$OUT/ferplus-tiny-$name
        # shellcheck disable=SC2046,SC2086 # the variant's and EXTRA's flags are meant to split
        "$PY" scripts/svi_train.py --overwrite "${common[@]}" $(variant_flags "$name" _tiny) ${EXTRA:-} --out "$run" 2>/dev/null \
            | grep -E "^(epoch|test)"
        evaluate "$run" --data-root "$FERPLUS"
    done
}

ferplus_gpu() {  # ferplus_gpu EPOCHS [VARIANT...]; EXTRA adds flags to every run (e.g. a --train-size smoke test)
    local epochs=${1:-8}
    shift || true
    local common=(--dataset ferplus --data-root "$FERPLUS" --device "${DEVICE:-cuda}" --workers "${WORKERS:-12}"
                  --batch-size 128 --lr 5e-4 --lr-schedule cosine --warmup-steps 200 --epochs "$epochs")
    [ "${DEVICE:-cuda}" = cpu ] || common+=(--bf16)
    local names=("$@")
    [ ${#names[@]} -gt 0 ] || names=("${VARIANTS[@]}")
    for name in "${names[@]}"; do
        local flags
        flags=$(variant_flags "$name" "")
        run=$OUT/ferplus-gpu-$name
        mkdir -p "$run"
        local t0=$SECONDS
        # shellcheck disable=SC2086 # the variant's and EXTRA's flags are meant to split
        "$PY" scripts/svi_train.py --overwrite "${common[@]}" $flags ${EXTRA:-} --out "$run" 2>"$run/stderr.log" \
            | grep -E "^(epoch|test)"
        echo "$name: training wall time $((SECONDS - t0)) s"
        evaluate "$run" --data-root "$FERPLUS" --num-workers "${WORKERS:-12}"
    done
}

case "${1:-}" in
    synthetic) synthetic ;;
    likelihoods) likelihoods ;;
    ferplus) ferplus "${2:-6}" ;;
    ferplus-gpu) shift; ferplus_gpu "$@" ;;
    *) echo "usage: $0 synthetic | likelihoods | ferplus [MINUTES] | ferplus-gpu [EPOCHS [VARIANT...]]" >&2; exit 2 ;;
esac
