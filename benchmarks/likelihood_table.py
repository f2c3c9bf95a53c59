#!/usr/bin/env python
"""Print the guide x likelihood table of RESULTS.md from ``ablations.sh likelihoods`` outputs.

    python benchmarks/likelihood_table.py runs/ablations
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COLUMNS = (("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced acc."), ("nll", "NLL"), ("ece", "ECE"),
           ("spread_correctness_spearman", "Spearman(spread, correct)"),
           ("auroc_misclassification/spread", "Spread AUROC"), ("votes/kl", "KL(votes || pred)"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the OUT folder of ablations.sh (holds likelihood-*/eval/metrics.json)")
    args = parser.parse_args(argv)
    runs = sorted(args.folder.glob("likelihood-*/eval/metrics.json"))
    if not runs:
        print(f"error: no likelihood-*/eval/metrics.json under {args.folder}; run "
              "`bash benchmarks/ablations.sh likelihoods` first", file=sys.stderr)
        return 2
    print("| guide | likelihood | " + " | ".join(label for _, label in COLUMNS) + " |")
    print("|---|---|" + "---:|" * len(COLUMNS))
    for path in runs:
        _, guide, likelihood = path.parent.parent.name.split("-")
        metrics = json.loads(path.read_text())
        cells = ["n/a" if metrics.get(key) is None else f"{metrics[key]:.3f}" for key, _ in COLUMNS]
        print(f"| {guide} | {likelihood} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
