"""POSTER++ and POSTER-Var: landmark-guided cross-attention FER networks.

- Mao et al., "POSTER++: A simpler and stronger facial expression recognition network",
  Pattern Recognition 2024.
- Lv, Zhang & Tsoi, "Facial expression recognition via variational inference",
  Scientific Reports 2026 (POSTER-Var).

Data flow for a 112x112 face (the native size; 224 inputs are subsampled to it):

    landmarks (MobileFaceNet, frozen)   ->  L1 64x28x28, L2 128x14x14, L3 512x7x7 -> conv -> 256x7x7
    image (IR-50) -> stride-2 convs     ->  I1 64x28x28, I2 128x14x14, I3 256x7x7
    stage s: landmark tokens L_s query image tokens I_s (global "window" attention with a
             relative position bias), layer-scale residual FFN
    token embeddings to 768 channels at 7x7 -> 3 x 49 tokens (+ level embeddings) -> LayerNorm
    [cls] + 147 tokens -> 2-layer ViT -> cls -> squeeze-excitation -> head

POSTER-Var adds the level embeddings, GELUs after the token-embedding convs, the fusion
LayerNorm and the VICH head (a mean and a log-variance of per-class intensities).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from pyro.nn import PyroModule
from torch import nn

from bayes_fer.models.im2col import PatchConv2d
from bayes_fer.models.ir50 import IR50
from bayes_fer.models.layers import DropPath, Mlp, SqueezeExcite, TransformerBlock, biased_attention, cpu_eager
from bayes_fer.models.mobilefacenet import MobileFaceNet
from bayes_fer.pyro_scope import LocalPyroModule

NATIVE_SIZE = 112
#: CPU inference runs large batches in chunks whose largest map stays under this size.
#: glibc serves bigger blocks with fresh pages (32 MB is its largest mmap threshold), and
#: faulting them in, page by page, took a fifth of a batch of 32 at 112 px on 2 cores;
#: chunks of 8 reuse freed memory and ran 9% faster.
INFERENCE_CHUNK_BYTES = 28 << 20


@dataclass(frozen=True)
class PosterConfig:
    """Architecture of a POSTER network. Presets live in ``bayes_fer.models.registry``."""

    num_classes: int = 7  # K: RAF-DB, AffectNet-7 and FER+ majority all use 7 or 8
    variational: bool = True  # VICH head (mean + log-variance) instead of a linear head
    layer_embedding: bool = True  # POSTER-Var's learnable per-level token embeddings
    embed_gelu: bool = True  # POSTER-Var's GELU after every token-embedding conv
    fusion_norm: bool = True  # POSTER-Var's LayerNorm over the 147 fused tokens
    dims: tuple[int, int, int] = (64, 128, 256)  # channels of the three cross-attention stages
    heads: tuple[int, int, int] = (2, 4, 8)  # heads of the three cross-attention stages
    ir_depths: tuple[int, int, int] = (3, 4, 14)  # IR-50 units per stage
    landmark_width: float = 1.0  # MobileFaceNet width multiplier (1.0 = published network)
    landmark_blocks: tuple[int, int, int] = (4, 6, 2)  # MobileFaceNet residual blocks per stage
    embed_dim: int = 768  # width of the fused tokens and the ViT
    vit_depth: int = 2  # transformer blocks after fusion
    vit_heads: int = 8  # heads of the ViT
    drop_path: tuple[float, float, float] = (0.0, 0.125, 0.25)  # the reference's stage DropPath rates
    layer_scale: float = 1e-5  # initial layer-scale of the stage residuals
    freeze_landmarks: bool = True  # frozen, eval-mode landmark net (as with published weights)
    input_size: int = NATIVE_SIZE  # side the network works at (a multiple of 16); 112 for published weights
    fast_cpu_training: bool = True  # CPU training kernels: Winograd convs, patch products, PReLU; ~1e-5 relative
    extra: dict = field(default_factory=dict, compare=False)  # free-form notes carried in checkpoints


class CrossAttention(nn.Module):
    """Landmark tokens as queries over image tokens, with a learned relative position bias.

    Both token sets come from the same ``size x size`` grid; the "window" of the reference
    covers the whole map, so attention is global.
    """

    def __init__(self, dim: int, num_heads: int, size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.size = size
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).flatten(1)
        rel = coords[:, :, None] - coords[:, None, :] + (size - 1)  # (2, N, N), each in [0, 2 size - 2]
        # Not persistent: it is a function of ``size`` and need not travel in checkpoints.
        self.register_buffer("relative_position_index", rel[0] * (2 * size - 1) + rel[1], persistent=False)

    def position_bias(self) -> torch.Tensor:
        N = self.size * self.size
        # index_select: its backward (an index_add) is about twice as fast on CPU as indexing's.
        bias = self.relative_position_bias_table.index_select(0, self.relative_position_index.view(-1))
        return bias.view(N, N, self.num_heads).permute(2, 0, 1)  # (h, N, N)

    def forward(self, x: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        h = self.num_heads
        k, v = self.kv(x).view(B, N, 2, h, C // h).permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, N, d) each
        # Landmark features are used as queries as they are: no query projection.
        q = queries.view(B, N, h, C // h).transpose(1, 2)  # (B, h, N, d)
        out = biased_attention(q, k, v, self.position_bias().to(q.dtype))  # (B, h, N, d)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class CrossAttentionStage(nn.Module):
    """LayerNorm on image tokens, cross-attention, layer-scale residual FFN."""

    def __init__(self, dim: int, num_heads: int, size: int, drop_path: float, layer_scale: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, num_heads, size)
        self.gamma1 = nn.Parameter(torch.full((dim,), layer_scale))
        self.gamma2 = nn.Parameter(torch.full((dim,), layer_scale))
        self.ffn_norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, image: torch.Tensor, landmarks: torch.Tensor, taps: dict | None = None) -> torch.Tensor:
        B, C, H, W = image.shape
        x = self.norm(image.flatten(2).transpose(1, 2))  # (B, N, C)
        a = self.attn(x, landmarks.flatten(2).transpose(1, 2))  # (B, N, C)
        x = x + self.drop_path(self.gamma1 * a)
        x = x + self.drop_path(self.gamma2 * self.mlp(self.ffn_norm(x)))
        if taps is not None:
            taps["attn"], taps["ffn"] = a, x.view(B, H, W, C)
        return x.transpose(1, 2).reshape(B, C, H, W)


def _token_embedding(
    in_ch: int, out_ch: int, strides: tuple[int, ...], kernel: int, gelu: bool, fast: bool
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, s in enumerate(strides):
        src = in_ch if i == 0 else out_ch
        if kernel == 3 and s == 2:
            layers.append(PatchConv2d(src, out_ch, fast=fast))
        else:
            layers.append(nn.Conv2d(src, out_ch, kernel, s, kernel // 2))
        if gelu:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class VICHHead(nn.Module):
    """Variational classification head: mean and log-variance of K latent intensities."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc_loc = nn.Linear(dim, num_classes)
        self.fc_log_var = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc_loc(x), self.fc_log_var(x)


class LinearHead(nn.Module):
    """Deterministic classification head (POSTER++)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.fc(x), None


class PosterNet(LocalPyroModule):
    """POSTER++ / POSTER-Var feature network with its head: ``loc, log_var = net(images)``.

    ``images`` is a normalized float batch (B, 3, S, S) with S a multiple of 112; larger
    inputs are subsampled to 112 exactly as the reference's nearest-neighbour resize does.
    ``log_var`` is ``None`` for the deterministic POSTER++ head.
    """

    def __init__(self, config: PosterConfig) -> None:
        super().__init__()
        self.config = config
        dims = config.dims
        self.landmarks = MobileFaceNet(config.landmark_width, config.landmark_blocks)
        self.backbone = IR50(dims, config.ir_depths, stem_width=dims[0], fast=config.fast_cpu_training)
        self.landmark_proj = nn.Conv2d(self.landmarks.widths[2], dims[2], 3, 1, 1)
        if self.landmarks.widths[:2] != dims[:2]:
            raise ValueError(f"landmark widths {self.landmarks.widths[:2]} must equal the stage dims {dims[:2]}")
        self.downsample = nn.ModuleList(nn.Conv2d(d, d, 3, 2, 1) for d in dims)
        side = config.input_size
        if not isinstance(side, int) or side < 32 or side % 16:
            raise ValueError(f"input_size must be a multiple of 16 of at least 32 (112 is native), got {side!r}")
        sizes = (side // 4, side // 8, side // 16)  # 28, 14, 7 at 112
        self.stages = nn.ModuleList(
            CrossAttentionStage(d, h, s, p, config.layer_scale)
            for d, h, s, p in zip(dims, config.heads, sizes, config.drop_path)
        )
        E = config.embed_dim
        self.embed = nn.ModuleList(
            [
                _token_embedding(dims[0], E, (2, 2), 3, config.embed_gelu, config.fast_cpu_training),
                _token_embedding(dims[1], E, (2,), 3, config.embed_gelu, config.fast_cpu_training),
                _token_embedding(dims[2], E, (1,), 1, config.embed_gelu, config.fast_cpu_training),
            ]
        )
        num_tokens = 3 * sizes[2] ** 2
        self.level_embeds = nn.Parameter(torch.zeros(3, 1, E)) if config.layer_embedding else None
        if self.level_embeds is not None:
            nn.init.trunc_normal_(self.level_embeds, std=0.02)
        self.fusion_norm = nn.LayerNorm(E) if config.fusion_norm else nn.Identity()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, E))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens + 1, E))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(E, config.vit_heads) for _ in range(config.vit_depth))
        self.norm = nn.LayerNorm(E, eps=1e-6)
        self.se = SqueezeExcite(E)
        self.head = VICHHead(E, config.num_classes) if config.variational else LinearHead(E, config.num_classes)
        if config.freeze_landmarks:
            self.landmarks.requires_grad_(False)
            self.landmarks.eval()
        # Channels-last convolutions: oneDNN and cuDNN run them without reordering each
        # layer's input, and the maps turn into tokens (B, H*W, C) without a copy.
        self.to(memory_format=torch.channels_last)

    def __getattr__(self, name: str):
        # Inside a Pyro call, a PyroModule reads each parameter, and each parameter of a plain
        # child module, through a stand-in `param` statement. Ours are module-local and trained
        # by torch, so those statements reach no store; they cost hundreds of effects a forward
        # pass and break torch.compile's graph at every child under the ELBO's trace. The
        # network reads its own parameters and plain children as torch does.
        modules, params = self.__dict__.get("_modules", {}), self.__dict__.get("_parameters", {})
        if name in params or (name in modules and not isinstance(modules[name], PyroModule)):
            return nn.Module.__getattr__(self, name)
        return super().__getattr__(name)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def train(self, mode: bool = True) -> "PosterNet":
        super().train(mode)
        if self.config.freeze_landmarks:
            # Frozen means frozen: BatchNorm statistics of the landmark net never drift.
            self.landmarks.eval()
        return self

    def _check_input(self, images: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(images) or images.ndim != 4:
            shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise ValueError(f"expected a normalized image batch of shape (B, 3, H, W), got {shape}")
        B, C, H, W = images.shape
        if C != 3:
            raise ValueError(
                f"expected 3 colour channels, got {C} in a batch of shape {tuple(images.shape)}; "
                "convert greyscale or RGBA images to RGB first (bayes_fer.data transforms do this)"
            )
        side = self.config.input_size
        if H != W or H % side:
            raise ValueError(
                f"expected square images of side {side} (this network's input) or a multiple of it such as "
                f"{2 * side}, got {H}x{W}; resize with bayes_fer.data.eval_transform({side})"
            )
        step = H // side
        # Nearest-neighbour downsampling by an integer factor keeps every step-th pixel.
        x = images[:, :, ::step, ::step] if step > 1 else images
        return x.contiguous(memory_format=torch.channels_last)

    def forward_features(self, images: torch.Tensor, taps: dict | None = None) -> torch.Tensor:
        """Run the network up to the squeeze-excited cls feature (B, embed_dim).

        Args:
            images: normalized batch (B, 3, S, S).
            taps: if a dict is given, intermediate outputs are stored in it under the
                reference's module names (used by the parity tests); this also makes the
                last ViT block compute every token instead of the cls token alone.
        """
        x = self._check_input(images)
        if self.config.freeze_landmarks:
            with torch.no_grad():
                raw = self.landmarks(x)
        else:
            raw = self.landmarks(x)
        marks = [raw[0], raw[1], self.landmark_proj(raw[2])]
        feats = self.backbone(x)
        tokens = []
        for i, (down, stage, embed) in enumerate(zip(self.downsample, self.stages, self.embed)):
            stage_taps: dict | None = {} if taps is not None else None
            y = embed(stage(down(feats[i]), marks[i], stage_taps))  # (B, E, 7, 7)
            if taps is not None:
                n = i + 1
                taps[f"face_landback.{i}"], taps[f"ir_back.{i}"] = raw[i], feats[i]
                taps[f"attn{n}"], taps[f"ffn{n}"] = stage_taps["attn"], stage_taps["ffn"]
                taps[("embed_q", "embed_k", "embed_v")[i]] = y
            y = y.flatten(2).transpose(1, 2)  # (B, 49, E)
            if self.level_embeds is not None:
                y = y + self.level_embeds[i]
            tokens.append(y)
        if taps is not None:
            taps["last_face_conv"] = marks[2]
        x = self.fusion_norm(torch.cat(tokens, dim=1))  # (B, 147, E)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            # Only the cls token is read after the last block: compute its row alone.
            x = block(x, query_len=1 if (i == last and taps is None) else None)
        x = self.norm(x)
        if taps is not None:
            taps["VIT.norm"] = x
        x = self.se(x[:, 0])
        if taps is not None:
            taps["VIT.se_block"] = x
        return x

    def _inference_chunk(self, images: torch.Tensor) -> int:
        """Images per pass for CPU inference on a large batch; 0 to run the batch whole."""
        if torch.is_grad_enabled() or not cpu_eager(images):
            return 0
        # The largest map is the backbone stem's, at the network's input side.
        per_image = self.backbone.stem[0].out_channels * self.config.input_size**2 * images.element_size()
        chunk = max(1, INFERENCE_CHUNK_BYTES // per_image)
        return chunk if images.shape[0] > chunk else 0

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        chunk = self._inference_chunk(images)
        if not chunk:
            return self.head(self.forward_features(images))
        parts = [self.head(self.forward_features(images[i : i + chunk])) for i in range(0, images.shape[0], chunk)]
        loc = torch.cat([p[0] for p in parts])
        return loc, None if parts[0][1] is None else torch.cat([p[1] for p in parts])
