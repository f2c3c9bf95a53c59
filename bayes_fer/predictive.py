"""Posterior-predictive queries: what a face expresses, how mixed, how sure.

    >>> from bayes_fer.predictive import Predictor
    >>> predictor = Predictor.from_checkpoint("runs/synthetic-poster_var_tiny/best.pt")
    >>> result = predictor(["face.png"], num_samples=200)
    >>> result.class_names[result.prediction[0]], result.probs[0], result.scale[0]

The guide runs the network once per image (``guide.encode``); Monte-Carlo draws of the
latent intensities come from its q(z | x) over that one pass, vectorized over draws, so
S = 1000 costs about what S = 1 does. Each draw's probabilities are the model's ``probs``
site, softmax(z + log base rates): what ``pyro.infer.Predictive(model, guide=guide,
return_sites=["probs"])(x)`` draws too, but that would run the network again for the
posterior means and spreads. Draws are taken in chunks of at most
:data:`MAX_DRAW_ELEMENTS` draw-class values, so memory stays bounded for any number of draws.

One prediction rule serves every consumer: a face's predicted class is the argmax of its
posterior-predictive probabilities ``probs``; ``prediction``, the readout, ``topk`` and the
records all follow it (:mod:`bayes_fer.results`). With a conformal calibrator attached
(``conformal=``, or :meth:`Predictor.calibrate_conformal`; see :mod:`bayes_fer.expression_sets`)
each result also answers ``prediction_set(alpha)``.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bayes_fer import checkpoint as ckpt_io
from bayes_fer.data.transforms import eval_transform
from bayes_fer.models import PosterNet, create_model
from bayes_fer.models.convert import is_reference_format, unwrap_state_dict
from bayes_fer.conformal import ConformalCalibrator
from bayes_fer.expression_sets import ConformalSets
from bayes_fer.results import PredictionResult, concat_results, result_row
from bayes_fer.training.builder import build_network, build_vich, config_from_dict
from bayes_fer.training.loop import resolve_device
from bayes_fer.vich import HeadOutput, VICHModel
from guides import AmortizedGuide, BayesianHeadGuide, DeltaGuide, LowRankGuide, NormalGuide, bounded_scale

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
MAX_PIXELS = 64_000_000  # larger images are refused by name rather than exhausting memory
# Monte-Carlo draws are taken in chunks of at most this many (draw, face, class) values
# (16 MiB of float32), so that memory does not grow with --num-samples.
MAX_DRAW_ELEMENTS = 2**22


class ImageInputError(ValueError):
    """An input could not be read as an image; the message names it."""


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


class Predictor(ConformalSets):
    """A trained network with its guide, answering posterior-predictive queries.

    Args:
        net: the POSTER network.
        guide: the amortized guide it was trained with; the guide owns the network and runs
            it, so a guide built without one gets ``net``.
        class_names: the K class names.
        image_size: side of the network input the data transforms produce.
        device: where the network runs.
        data_config: dataset name, label mode and image size of training.
        model: the trained VICH model (its prior and class base rates); a default one if None.
        class_prior: the class base rates predictions are made under: ``"train"`` (those of
            the training data; the default), ``"uniform"``, a power in [-1, 1] of the training
            rates, or K probabilities. Only models trained with ``--class-prior train`` have
            training rates; for the others all choices but explicit probabilities agree.
        conformal: a fitted :class:`~bayes_fer.conformal.ConformalCalibrator` or the path of one
            saved as JSON, calibrated on this model's classes; results then answer
            ``prediction_set(alpha)``. Also settable later (``predictor.conformal = ...``).
    """

    def __init__(self, net: PosterNet, guide: AmortizedGuide, class_names: Sequence[str], image_size: int = 112,
                 device: str | torch.device = "auto", data_config: dict | None = None,
                 model: VICHModel | None = None, class_prior: str | float | Sequence[float] = "train",
                 conformal: ConformalCalibrator | str | os.PathLike | None = None) -> None:
        if len(class_names) != net.num_classes:
            raise ValueError(f"{len(class_names)} class names given for a {net.num_classes}-class network")
        if guide.net is None:
            guide.net = net
        elif guide.net is not net:
            raise ValueError(f"the {type(guide).__name__} given already encodes with another network; pass that "
                             "network, or a guide built without one")
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.guide = guide.to(self.device).eval()
        self.model = (model or VICHModel(net.num_classes)).to(self.device).eval()
        self.model.set_prediction_prior(class_prior)
        self.class_names = list(class_names)
        self.image_size = image_size
        self.eval_transform = eval_transform(image_size)
        self.data_config = dict(data_config or {"dataset": None, "label_mode": "majority", "image_size": image_size})
        self.conformal = conformal

    @property
    def net(self) -> PosterNet:
        """The network, which the guide owns and runs."""
        return self.guide.net

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto", *, class_names: Sequence[str] | None = None,
                        dataset: str | None = None, class_prior: str | float | Sequence[float] = "train",
                        conformal: ConformalCalibrator | str | os.PathLike | None = None) -> "Predictor":
        """Load a ``svi_train.py`` checkpoint, or a reference POSTER-Var / POSTER++ checkpoint.

        Reference checkpoints carry no class names: pass ``dataset`` (e.g. ``"rafdb"``) or
        ``class_names``. POSTER-Var ones get the paper's mean-field guide; POSTER++ ones a
        Delta guide (their spread is reported as zero). ``conformal`` attaches a calibrator
        (or the path of a saved one) fitted on this model's outputs.
        """
        raw = torch.load(path, map_location="cpu", weights_only=True) if Path(path).is_file() else None
        if raw is None:
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
        if isinstance(raw, dict) and raw.get("format") == ckpt_io.FORMAT:
            config = config_from_dict(raw["config"])
            net = build_network(config, len(raw["class_names"]), load_weights=False)
            net.load_state_dict(raw["model"])
            model, guide = build_vich(config, net)
            guide.load_state_dict_without_net(raw["guide"])
            if "vich" in raw:  # the trained prior and class base rates (checkpoints since the vote likelihoods)
                model.load_state_dict(raw["vich"])
            return cls(net, guide, raw["class_names"], raw["data"]["image_size"], device, raw["data"], model, class_prior,
                       conformal)
        sd = unwrap_state_dict(raw)
        if not is_reference_format(sd):
            raise ValueError(f"{path} is neither a bayes-fer checkpoint nor a POSTER++/POSTER-Var one")
        names = _class_names_for(class_names, dataset, path)
        variational = any(k.startswith("VIT.head_vae.") for k in sd)
        net = create_model("poster_var" if variational else "poster_pp", len(names), checkpoint=sd)
        guide = NormalGuide(len(names)) if variational else DeltaGuide(len(names))
        return cls(net, guide, names, 112, device, {"dataset": dataset, "label_mode": "majority", "image_size": 112},
                   class_prior=class_prior, conformal=conformal)

    @classmethod
    def pretrained(cls, name: str = "ferplus", device: str = "auto",
                   class_prior: str | float | Sequence[float] = "train",
                   conformal: ConformalCalibrator | str | os.PathLike | None = None) -> "Predictor":
        """The model shipped inside the package (see :mod:`bayes_fer.pretrained`); nothing is downloaded.

        ``class_prior`` as in the constructor: e.g. ``0.3``, the power its model card gives for
        weighing the classes equally. ``conformal`` attaches a calibrator (or the path of a
        saved one) fitted on its outputs.
        """
        from bayes_fer.pretrained import load_pretrained

        predictor = load_pretrained(name, device)
        predictor.model.set_prediction_prior(class_prior)
        predictor.conformal = conformal
        return predictor

    # -- inference ---------------------------------------------------------------------------
    @torch.no_grad()
    def predict_batch(self, images: torch.Tensor, num_samples: int = 100, return_samples: bool = False) -> PredictionResult:
        """Query an already-normalized batch (B, 3, S, S), as the datasets yield it."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        out = self.guide.encode(images.to(self.device))  # the one network pass
        if out.log_var is None and not isinstance(self.guide, DeltaGuide):
            raise ValueError("this network has a deterministic head; it needs a Delta guide")
        K = len(self.class_names)
        epistemic, kept = None, []
        if isinstance(self.guide, BayesianHeadGuide):
            probs, mean_draw_entropy, epistemic, kept = self._bayesian_head_draws(out, num_samples, return_samples)
        else:
            q = self.guide.posterior(out)
            chunk = max(1, MAX_DRAW_ELEMENTS // (out.batch_size * K))
            prob_sum = torch.zeros(out.batch_size, K, device=self.device)
            entropy_sum = torch.zeros(out.batch_size, device=self.device)
            for start in range(0, num_samples, chunk):
                size = min(chunk, num_samples - start)
                z = q.sample((size,))  # (S_chunk, B, K)
                draws = self.model.predictive_logits(z).softmax(-1).float()  # the model's probs site
                prob_sum += draws.sum(0)
                entropy_sum += _entropy(draws).sum(0)
                if return_samples:
                    kept.append(draws.cpu())
            probs, mean_draw_entropy = prob_sum / num_samples, entropy_sum / num_samples
        entropy = _entropy(probs)
        mi = (entropy - mean_draw_entropy).clamp_min(0.0) if self.guide.stochastic else torch.zeros_like(entropy)
        aleatoric = mi if epistemic is None else (mi - epistemic).clamp_min(0.0)
        loc = self.guide.mean(out)
        cov = self.guide.cov_factor(out).cpu() if isinstance(self.guide, LowRankGuide) else None
        return self._with_sets(PredictionResult(
            class_names=self.class_names, probs=probs.cpu(), loc=loc.cpu(), scale=self.guide.marginal_scale(out).cpu(),
            prediction=probs.argmax(-1).cpu(), entropy=entropy.cpu(), mutual_information=mi.cpu(), cov_factor=cov,
            samples=torch.cat(kept) if return_samples else None, stochastic=self.guide.stochastic,
            aleatoric_mi=aleatoric.cpu(), epistemic_mi=None if epistemic is None else epistemic.cpu(),
        ))

    def _bayesian_head_draws(self, out: HeadOutput, num_samples: int, keep: bool):
        """Nested draws, W ~ q(W) then z ~ q(z | x, W), in bounded chunks.

        Returns the predictive probabilities (B, K), the mean entropy of the draws (B,), the
        epistemic mutual information H[E_W p_W] - E_W H[p_W] with p_W = E_{z|W} softmax (B,),
        and the draws (list of (S_chunk, B, K)) when ``keep``. Up to 32 draws of W with
        S / 32 draws of z each; averaging over few z per W leaves the epistemic estimate a
        small upward bias (about 0.01 nats at S = 1024 on K = 4).
        """
        B, K = out.batch_size, len(self.class_names)
        num_weights = min(num_samples, 32)
        per_weight = max(1, num_samples // num_weights)
        chunk = max(1, MAX_DRAW_ELEMENTS // (B * K))
        locs = self.guide.intensity_mean(out, self.guide.sample_weights(num_weights))  # (J, B, K)
        scale = bounded_scale(out.log_var)
        per_w, entropy_sum, kept = [], torch.zeros(B, device=locs.device), []
        for loc in locs:
            prob_sum = torch.zeros(B, K, device=locs.device)
            for start in range(0, per_weight, chunk):
                size = min(chunk, per_weight - start)
                z = loc + scale * torch.randn(size, B, K, device=loc.device)
                draws = self.model.predictive_logits(z).softmax(-1).float()  # (S_chunk, B, K)
                prob_sum += draws.sum(0)
                entropy_sum += _entropy(draws).sum(0)
                if keep:
                    kept.append(draws.cpu())
            per_w.append(prob_sum / per_weight)
        per_w = torch.stack(per_w)  # (J, B, K)
        probs = per_w.mean(0)
        epistemic = (_entropy(probs) - _entropy(per_w).mean(0)).clamp_min(0.0)
        return probs, entropy_sum / (num_weights * per_weight), epistemic, kept

    def __call__(self, images, num_samples: int = 100, return_samples: bool = False, batch_size: int = 64) -> PredictionResult:
        """Query raw images: a [0, 1] float tensor batch (B, 3, H, W) of any size, PIL images,
        numpy arrays (H, W[, C]), file paths, or a folder (streamed in batches)."""
        return self.predict_images(self.predict_batch, images, num_samples, return_samples, batch_size)

    def predict_images(self, predict_batch, images, num_samples: int, return_samples: bool,
                       batch_size: int) -> PredictionResult:
        """Read ``images`` with this predictor's preprocessing and answer them batch by batch
        with ``predict_batch`` (its own, or an ensemble's), sources attached."""
        items = list(self._expand(images))
        results = [predict_batch(batch, num_samples, return_samples) for batch, _ in self._batches(items, batch_size)]
        if not results:
            raise ImageInputError("no images were given (an empty list or a folder without images)")
        merged = concat_results(results)
        merged.sources = [src for _, src in items]
        return merged

    def _expand(self, images) -> Iterator[tuple[object, dict]]:
        if torch.is_tensor(images):
            if images.ndim == 3:
                images = images[None]
            if images.ndim != 4 or images.shape[1] not in (1, 3, 4):
                raise ImageInputError(f"expected a (B, C, H, W) tensor with C in 1, 3, 4, got {tuple(images.shape)}")
            for i, img in enumerate(images):
                yield img, {"index": i}
            return
        if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)):
            images = [images]
        for i, img in enumerate(images):
            if isinstance(img, (str, os.PathLike)) and Path(img).is_dir():
                for p in iter_image_files(img):
                    yield p, {"path": str(p)}
            elif isinstance(img, (str, os.PathLike)):
                yield Path(img), {"path": str(img)}
            else:
                yield img, {"index": i}

    def _batches(self, items: Sequence[tuple[object, dict]], batch_size: int) -> Iterator[tuple[torch.Tensor, list[dict]]]:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            yield torch.stack([self.preprocess(img) for img, _ in chunk]), [src for _, src in chunk]

    def preprocess(self, img) -> torch.Tensor:
        """One image (path, PIL, numpy or [0, 1] tensor) to the normalized network input."""
        if isinstance(img, (str, os.PathLike)):
            img = open_image(img)
        elif isinstance(img, np.ndarray):
            img = _from_numpy(img)
        if torch.is_tensor(img) and img.is_floating_point() and (img.min() < 0 or img.max() > 1):
            raise ImageInputError(f"float images (tensors or numpy arrays) must hold values in [0, 1], got "
                                  f"[{img.min():.3g}, {img.max():.3g}]; divide 8-bit values by 255")
        return self.eval_transform(img)


def _class_names_for(class_names, dataset, path) -> list[str]:
    if class_names is not None:
        return list(class_names)
    if dataset is not None:
        from bayes_fer.data.labels import LABEL_SPACES

        return list(LABEL_SPACES[dataset])
    raise ValueError(
        f"{path} is a reference POSTER checkpoint without class names; pass dataset='rafdb' (or another "
        "label space) or class_names=[...] in the order the checkpoint was trained with"
    )


def iter_image_files(folder: str | os.PathLike) -> Iterator[Path]:
    """Image files under ``folder`` (recursively, sorted), lazily: large folders stream."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(root) / name


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file, or raise ImageInputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ImageInputError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ImageInputError(f"{path}: {im.width}x{im.height} is larger than {MAX_PIXELS:,} pixels; downscale it first")
            im.load()
            return im.copy()
    except ImageInputError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageInputError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e


def _from_numpy(arr: np.ndarray) -> Image.Image | torch.Tensor:
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4)):
        if arr.dtype == np.uint8:
            return Image.fromarray(arr.squeeze(-1) if arr.ndim == 3 and arr.shape[2] == 1 else arr)
        if arr.dtype == np.uint16:
            return Image.fromarray((arr.astype(np.float64) / 257).round().astype(np.uint8))
        if np.issubdtype(arr.dtype, np.floating):
            t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
            return t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    raise ImageInputError(f"expected a numpy image (H, W) or (H, W, 1|3|4) of uint8, uint16 or float in [0, 1], got "
                          f"shape {arr.shape} dtype {arr.dtype}")


def iter_predictions(predictor: Predictor, paths: Iterable[str | os.PathLike], num_samples: int = 100,
                     batch_size: int = 64, detect_faces: bool = False) -> Iterator[tuple[dict, PredictionResult | None]]:
    """Stream (source, one-row result) pairs over files and folders, in input order; unreadable
    files and photos without a face give a source with an ``error`` entry (and ``None``) in
    their place instead of stopping the run. With ``detect_faces`` each face is found, turned
    upright by its eyes and cropped as the training faces were framed."""
    from bayes_fer.faces import aligned_crop, find_faces
    from bayes_fer.video import training_colour

    def sources() -> Iterator[Path]:
        for p in paths:
            yield from (iter_image_files(p) if Path(p).is_dir() else [Path(p)])

    # Error entries wait in the queue beside the faces, so the stream keeps the input order.
    pending: list[tuple[torch.Tensor | None, dict]] = []

    def flush():
        faces = [x for x, _ in pending if x is not None]
        result = predictor.predict_batch(torch.stack(faces), num_samples) if faces else None
        row = 0
        for x, src in pending:
            if x is None:
                yield src, None
            else:
                yield src, result_row(result, row, src)
                row += 1
        pending.clear()

    for path in sources():
        try:
            img = open_image(path)
        except ImageInputError as e:
            pending.append((None, {"path": str(path), "error": str(e)}))
            continue
        crops = [(img, None)]
        if detect_faces:
            faces = find_faces(img)
            if not faces:
                pending.append((None, {"path": str(path), "error": "no face found"}))
                continue
            # Upright, FER-framed crops in the training data's colours.
            crops = [(training_colour(aligned_crop(img, f), predictor.data_config.get("dataset")), f) for f in faces]
        for crop, face in crops:
            src = {"path": str(path)} if face is None else {"path": str(path), **face.to_dict()}
            pending.append((predictor.preprocess(crop), src))
            if len(pending) >= batch_size:
                yield from flush()
    yield from flush()

