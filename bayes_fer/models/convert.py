"""Checkpoint filters: published POSTER++ / POSTER-Var formats to bayes-fer parameter names.

One pure function per foreign format, as timm does it: unwrap, strip wrapper prefixes,
drop the tensors that the reference holds but never uses, rename by explicit rules. A key
that no rule covers is reported, never silently skipped, and nothing is matched by shape.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

# Reference tensors that no forward pass reads (14.5 M parameters in the full model).
DEAD_KEYS = [
    r"ir_back\.output_layer\..*",  # IR-50's face-embedding head
    r"face_landback\.output_layer\..*",  # MobileFaceNet's 136-value landmark regressor
    r"VIT\.(IRLinear1|IRLinear2|CON1|patch_embed\.proj|eca_block\.conv)\..*",  # built, never called
    r"VIT\.blocks\.\d+\.conv\..*",  # a Conv1d in each ViT block that forward skips
    r"VIT\.head_vae\.(batchnorm|layernorm)\..*",  # POSTER-Var's unused head normalizations
    r"attn\d\.relative_position_index",  # recomputed from the window size
]

# POSTER-Var keeps POSTER++'s linear head although its VICH head replaces it.
_DEAD_IN_VARIATIONAL = [r"VIT\.head\.linear\..*"]

# Ordered (pattern, replacement) pairs; the first full match wins.
RENAME_RULES: list[tuple[str, str]] = [
    # MobileFaceNet: stems, the three (strided block + residual blocks) stages, the 1x1 head.
    (r"face_landback\.conv1\.(.*)", r"landmarks.stem.0.\1"),
    (r"face_landback\.conv2_dw\.(.*)", r"landmarks.stem.1.\1"),
    (r"face_landback\.conv_23\.(.*)", r"landmarks.stage1.0.\1"),
    (r"face_landback\.conv_3\.model\.(\d+)\.(.*)", r"landmarks.stage1.+\1.\2"),
    (r"face_landback\.conv_34\.(.*)", r"landmarks.stage2.0.\1"),
    (r"face_landback\.conv_4\.model\.(\d+)\.(.*)", r"landmarks.stage2.+\1.\2"),
    (r"face_landback\.conv_45\.(.*)", r"landmarks.stage3.0.\1"),
    (r"face_landback\.conv_5\.model\.(\d+)\.(.*)", r"landmarks.stage3.+\1.\2"),
    (r"face_landback\.conv_6_sep\.(.*)", r"landmarks.head.\1"),
    # IR-50: input layer and bodies; res_layer indices 0-4 are bn1, conv1, prelu, conv2, bn2.
    (r"ir_back\.input_layer\.(.*)", r"backbone.stem.\1"),
    (r"ir_back\.body(\d)\.(\d+)\.res_layer\.([0-4])\.(.*)", r"backbone.stages.-\1.\2.res\3.\4"),
    (r"ir_back\.body(\d)\.(\d+)\.shortcut_layer\.(.*)", r"backbone.stages.-\1.\2.shortcut.\3"),
    (r"last_face_conv\.(.*)", r"landmark_proj.\1"),
    (r"conv(\d)\.(.*)", r"downsample.-\1.\2"),
    (r"window(\d)\.norm\.(.*)", r"stages.-\1.norm.\2"),
    (r"attn(\d)\.qkv\.(.*)", r"stages.-\1.attn.kv.\2"),
    (r"attn(\d)\.(proj\..*|relative_position_bias_table)", r"stages.-\1.attn.\2"),
    (r"ffn(\d)\.(gamma1|gamma2|mlp\..*)", r"stages.-\1.\2"),
    (r"ffn(\d)\.norm\.(.*)", r"stages.-\1.ffn_norm.\2"),
    (r"embed_q\.(.*)", r"embed.0.\1"),
    (r"embed_k\.(.*)", r"embed.1.\1"),
    (r"embed_v\.(?:0|proj)\.(.*)", r"embed.2.0.\1"),  # POSTER-Var: a plain conv; POSTER++: PatchEmbed.proj
    (r"(level_embeds|fusion_norm\..*)", r"\1"),
    (r"VIT\.(cls_token|pos_embed|blocks\..*|norm\..*)", r"\1"),
    (r"VIT\.se_block\.(.*)", r"se.\1"),
    (r"VIT\.head_vae\.fc_mu\.(.*)", r"head.fc_loc.\1"),
    (r"VIT\.head_vae\.fc_logvar\.(.*)", r"head.fc_log_var.\1"),
    (r"VIT\.head\.linear\.(.*)", r"head.fc.\1"),
]
_RES_NAMES = ["bn1", "conv1", "prelu", "conv2", "bn2"]


class CheckpointError(ValueError):
    """A checkpoint does not fit the model; the message lists what differs."""


def unwrap_state_dict(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """Return the tensors of a checkpoint, unwrapped from ``state_dict``/``model`` and wrapper prefixes."""
    sd = checkpoint
    for wrapper in ("state_dict", "model"):
        if isinstance(sd, Mapping) and wrapper in sd and isinstance(sd[wrapper], Mapping):
            sd = sd[wrapper]
    out = {}
    for key, value in sd.items():
        for prefix in ("module.", "_orig_mod."):  # DataParallel, torch.compile
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def _renumber(name: str) -> str:
    """Finish a renamed key: '+j' means index j+1, '-s' means s-1, then sub-module renames."""
    name = re.sub(r"\.\+(\d+)\.", lambda m: f".{int(m.group(1)) + 1}.", name)
    name = re.sub(r"\.-(\d+)\.", lambda m: f".{int(m.group(1)) - 1}.", name)
    name = re.sub(r"\.res([0-4])\.", lambda m: f".{_RES_NAMES[int(m.group(1))]}.", name)
    # MobileFaceNet bottlenecks: conv -> expand, conv_dw -> depthwise (project keeps its name).
    name = re.sub(r"^(landmarks\.stage\d\.\d+)\.conv\.", r"\1.expand.", name)
    return re.sub(r"^(landmarks\.stage\d\.\d+)\.conv_dw\.", r"\1.depthwise.", name)


def is_reference_format(state_dict: Mapping) -> bool:
    """Whether the keys look like the public POSTER++ / POSTER-Var implementation's."""
    return any(k.startswith(("ir_back.", "face_landback.", "VIT.")) for k in state_dict)


def poster_checkpoint_filter_fn(checkpoint: Mapping, variational: bool) -> dict[str, torch.Tensor]:
    """Map a reference POSTER-Var (``variational=True``) or POSTER++ state dict to our names.

    Raises:
        CheckpointError: listing every key that is neither dead nor covered by a rule.
    """
    dead = [re.compile(p) for p in DEAD_KEYS + (_DEAD_IN_VARIATIONAL if variational else [])]
    rules = [(re.compile(p), r) for p, r in RENAME_RULES]
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in unwrap_state_dict(checkpoint).items():
        if any(d.fullmatch(key) for d in dead):
            continue
        for pattern, repl in rules:
            if pattern.fullmatch(key):
                out[_renumber(pattern.sub(repl, key))] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} checkpoint keys match no POSTER rename rule (is this a POSTER++/POSTER-Var "
            f"checkpoint?): {', '.join(sorted(unknown)[:20])}{' ...' if len(unknown) > 20 else ''}"
        )
    return out


def ir50_filter_fn(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """Map the published ``ir50.pth`` (bare IR-50 state dict) to ``backbone.*`` names."""
    sd = {f"ir_back.{k}": v for k, v in unwrap_state_dict(checkpoint).items()}
    return poster_checkpoint_filter_fn(sd, variational=True)


def mobilefacenet_filter_fn(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """Map ``mobilefacenet_model_best.pth.tar`` (``{"state_dict": ...}``) to ``landmarks.*`` names."""
    sd = {f"face_landback.{k}": v for k, v in unwrap_state_dict(checkpoint).items()}
    return poster_checkpoint_filter_fn(sd, variational=True)
