"""The synthetic compound-expression dataset: faces drawn on the fly, no files needed."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from bayes_fer.data.base import FERDataset
from bayes_fer.data.labels import LABEL_SPACES
from bayes_fer.data.synthetic.actions import action_units, sample_mixtures, sample_votes
from bayes_fer.data.synthetic.render import SceneConfig, render_face

#: Separate seed streams per split make train, valid and test disjoint for any one seed.
SPLIT_STREAMS: dict[str, int] = {"train": 0, "valid": 1, "test": 2}
_BLOCK = 1024  # mixtures are drawn in seeded blocks, so a larger dataset extends a smaller one


@dataclass(frozen=True)
class SyntheticConfig:
    """How synthetic faces are drawn; ``load_dataset("synthetic", **fields)`` overrides fields.

    The defaults make the dominant emotion clear on most faces (a small network reaches
    >= 80% held-out accuracy within minutes on a CPU) while a minority of faces are
    genuinely compound.
    """

    sizes: tuple[int, int, int] = (20000, 2000, 2000)  # default train / valid / test sizes
    p_compound: float = 0.15  # share of faces mixing two emotions about equally
    dominant_alpha: float = 10.0  # Dirichlet weight of the one focus emotion (mean share ~0.89)
    compound_alpha: float = 3.0  # Dirichlet weight of each of the two focus emotions of a compound face
    base_alpha: float = 0.2  # Dirichlet weight of every other emotion (traces of them)
    num_votes: int = 10  # simulated annotators per face, as in FER+
    intensity: tuple[float, float] = (0.85, 1.15)  # per-face expression strength factor
    au_noise: float = 0.05  # per-AU person-to-person variation (standard deviation)
    scene: SceneConfig = field(default_factory=SceneConfig)  # nuisance: pose, light, noise, occlusion

    @classmethod
    def from_options(cls, **options) -> "SyntheticConfig":
        """A config from flat keyword options: fields of this class or of :class:`SceneConfig`."""
        own = {f.name for f in dataclasses.fields(cls)} - {"scene"}
        scene_fields = {f.name for f in dataclasses.fields(SceneConfig)}
        unknown = sorted(set(options) - own - scene_fields - {"scene"})
        if unknown:
            raise TypeError(
                f"unknown synthetic option(s) {unknown}; valid options: {', '.join(sorted(own | scene_fields))}"
            )
        scene = options.pop("scene", SceneConfig())
        scene = dataclasses.replace(scene, **{k: options.pop(k) for k in list(options) if k in scene_fields})
        return cls(scene=scene, **options)


class SyntheticFaces(FERDataset):
    """Procedural faces whose action units follow a known mixture of the 7 basic emotions.

    Samples carry ``"mixture"`` (the true emotion mixture), ``"votes"`` (simulated annotator
    counts) and, with ``label_mode="probability"``, ``"target"`` (the vote distribution, as
    FER+ gives). ``"label"`` is the argmax of the true mixture. Sample ``i`` of a split is
    a pure function of ``(seed, split, i)``.
    """

    def __init__(
        self,
        split: str = "train",
        size: int | None = None,
        *,
        seed: int = 0,
        image_size: int = 112,
        transform: Callable | None = None,
        label_mode: str = "majority",
        config: SyntheticConfig = SyntheticConfig(),
    ) -> None:
        if split not in SPLIT_STREAMS:
            raise ValueError(f"synthetic splits are {', '.join(SPLIT_STREAMS)}; got {split!r}")
        size = config.sizes[SPLIT_STREAMS[split]] if size is None else size
        if size <= 0:
            raise ValueError(f"size must be a positive number of samples, got {size}")
        self.seed, self.config, self.image_size = seed, config, image_size
        self._stream = SPLIT_STREAMS[split]
        mixtures, votes = [], []
        for block in range(-(-size // _BLOCK)):
            rng = np.random.default_rng([seed, self._stream, 0, block])
            m = sample_mixtures(
                rng,
                _BLOCK,
                p_compound=config.p_compound,
                dominant_alpha=config.dominant_alpha,
                compound_alpha=config.compound_alpha,
                base_alpha=config.base_alpha,
            )
            mixtures.append(m)
            votes.append(sample_votes(rng, m, config.num_votes))
        self.mixtures = np.concatenate(mixtures)[:size].astype(np.float32)
        self.votes = np.concatenate(votes)[:size].astype(np.float32)
        super().__init__("synthetic", split, LABEL_SPACES["synthetic"], self.mixtures.argmax(axis=1), transform)
        self.label_mode = label_mode

    def source(self, index: int) -> str:
        return f"synthetic face {index} (seed {self.seed}, split {self.split})"

    def load_image(self, index: int) -> Image.Image:
        rng = np.random.default_rng([self.seed, self._stream, 1, index])
        au = action_units(rng, self.mixtures[index].astype(np.float64), intensity=self.config.intensity,
                          au_noise=self.config.au_noise)
        return render_face(au, rng, self.image_size, self.config.scene)

    def sample_extras(self, index: int) -> dict[str, torch.Tensor]:
        extras = {
            "votes": torch.from_numpy(self.votes[index].copy()),
            "mixture": torch.from_numpy(self.mixtures[index].copy()),
        }
        if self.label_mode == "probability":
            total = float(self.votes[index].sum())
            extras["target"] = extras["votes"] / total if total > 0 else extras["mixture"].clone()
        return extras
