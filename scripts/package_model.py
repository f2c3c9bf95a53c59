"""Package a trained checkpoint as a model that ships inside bayes-fer.

Writes ``bayes_fer/weights/<name>.pt`` (the checkpoint less its optimizer, scheduler and
random-number state, network and guide weights in float16) and records its SHA-256 and
provenance in ``bayes_fer/weights/manifest.json``, which ``load_pretrained`` checks on load.
The same checkpoint always gives the same bytes and checksum.

    python scripts/package_model.py --checkpoint runs/ferplus-la/best.pt
    python scripts/package_model.py --checkpoint best.pt --name ferplus --out-dir /tmp/weights
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bayes_fer import checkpoint as ckpt_io  # noqa: E402
from bayes_fer.pretrained import MANIFEST, sha256, strip_for_packaging  # noqa: E402

SIZE_LIMIT_MB = 25.0  # what a wheel should carry for one model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python scripts/package_model.py --checkpoint runs/ferplus-la/best.pt",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="svi_train.py checkpoint (best.pt) to package")
    parser.add_argument("--name", default="ferplus", help="name load_pretrained(name) will know it by (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "bayes_fer" / "weights",
                        help="folder for <name>.pt and manifest.json (default: the package's weights folder)")
    parser.add_argument("--command", default="",
                        help="the training command that made the checkpoint, recorded in the manifest")
    return parser


def package(checkpoint: Path, name: str, out_dir: Path, command: str = "") -> dict:
    """Write ``out_dir/<name>.pt`` and its manifest entry; returns the entry."""
    ckpt = ckpt_io.load(checkpoint)
    packed = strip_for_packaging(ckpt)
    buf = io.BytesIO()
    torch.save(packed, buf)
    size_mb = buf.tell() / 2**20
    if size_mb > SIZE_LIMIT_MB:
        raise ValueError(f"the packaged model is {size_mb:.1f} MB, more than the {SIZE_LIMIT_MB} MB a wheel "
                         "should carry; package a smaller network")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.pt"
    path.write_bytes(buf.getvalue())
    entry = {
        "file": path.name,
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "model": packed["config"]["model"],
        "dataset": packed["data"]["dataset"],
        "class_names": list(packed["class_names"]),
        "epoch": packed.get("epoch"),
        "best_valid_accuracy": packed.get("best_metric"),
        "source_sha256": sha256(checkpoint),
        "training_command": command,
    }
    manifest_path = out_dir / MANIFEST
    entries = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    entries[name] = entry
    manifest_path.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return entry


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        entry = package(args.checkpoint, args.name, args.out_dir, args.command)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out_dir / entry['file']} ({entry['bytes'] / 2**20:.2f} MB, sha256 {entry['sha256']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
