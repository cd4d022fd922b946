"""Write a diffusers SD1.x pipeline as an original-layout single-file checkpoint (test fixture).

What users pass as `ckpt_base` is a CompVis/A1111-style `.safetensors` file
(`model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.transformer.*`). To test
that path offline we need one of the tiny model; diffusers ships only the other direction, so
this is the inverse key mapping for the SD1.x layout, checked by a round trip in the tests.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
UNET_TOP_LEVEL = {
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
}
VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _resnet(name: str) -> str:
    for new, old in RESNET.items():
        if name.startswith(new + "."):
            return old + name[len(new) :]
    return name


def unet_key(key: str, layers: int) -> str:
    for new, old in UNET_TOP_LEVEL.items():
        if key.startswith(new + "."):
            return old + key[len(new) :]
    parts = key.split(".")
    if parts[0] == "down_blocks":
        block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        base = 1 + block * (layers + 1)
        if kind == "downsamplers":
            return f"input_blocks.{base + layers}.0.op.{parts[-1]}"
        sub = 0 if kind == "resnets" else 1
        rest = _resnet(rest) if kind == "resnets" else rest
        return f"input_blocks.{base + index}.{sub}.{rest}"
    if parts[0] == "mid_block":
        kind, index, rest = parts[1], int(parts[2]), ".".join(parts[3:])
        slot = {("resnets", 0): 0, ("attentions", 0): 1, ("resnets", 1): 2}[(kind, index)]
        return f"middle_block.{slot}.{_resnet(rest) if kind == 'resnets' else rest}"
    if parts[0] == "up_blocks":
        block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), ".".join(parts[4:])
        base = block * (layers + 1)
        if kind == "upsamplers":
            return f"output_blocks.{base + layers}.UPSAMPLER.conv.{parts[-1]}"
        sub = 0 if kind == "resnets" else 1
        rest = _resnet(rest) if kind == "resnets" else rest
        return f"output_blocks.{base + index}.{sub}.{rest}"
    raise KeyError(key)


def unet_state(unet) -> dict[str, torch.Tensor]:
    config = unet.config
    state = {unet_key(k, config.layers_per_block): v for k, v in unet.state_dict().items()}
    # the upsampler sits after the attention in blocks that have one
    for key in [k for k in state if ".UPSAMPLER." in k]:
        prefix = key.split(".UPSAMPLER.")[0]
        has_attention = any(k.startswith(prefix + ".1.") for k in state)
        state[key.replace("UPSAMPLER", "2" if has_attention else "1")] = state.pop(key)
    return {f"model.diffusion_model.{k}": v for k, v in state.items()}


def vae_key(key: str, blocks: int) -> str:
    parts = key.split(".")
    if parts[0] in ("encoder", "decoder") and parts[1] in ("down_blocks", "up_blocks"):
        coder, index, kind = parts[0], int(parts[2]), parts[3]
        level = index if coder == "encoder" else blocks - 1 - index
        group = "down" if coder == "encoder" else "up"
        if kind in ("downsamplers", "upsamplers"):
            sample = "downsample" if coder == "encoder" else "upsample"
            return f"{coder}.{group}.{level}.{sample}.conv.{parts[-1]}"
        rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
        return f"{coder}.{group}.{level}.block.{parts[4]}.{rest}"
    if parts[0] in ("encoder", "decoder") and parts[1] == "mid_block":
        kind, index, rest = parts[2], int(parts[3]), ".".join(parts[4:])
        if kind == "attentions":
            for new, old in VAE_ATTENTION.items():
                if rest.startswith(new + "."):
                    return f"{parts[0]}.mid.attn_1.{old}{rest[len(new) :]}"
        return f"{parts[0]}.mid.block_{index + 1}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
    if parts[0] in ("encoder", "decoder") and parts[1] == "conv_norm_out":
        return f"{parts[0]}.norm_out.{parts[-1]}"
    return key


def vae_state(vae) -> dict[str, torch.Tensor]:
    blocks = len(vae.config.block_out_channels)
    state = {}
    for key, tensor in vae.state_dict().items():
        new = vae_key(key, blocks)
        if ".mid.attn_1." in new and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]  # the original uses 1x1 convolutions
        state[f"first_stage_model.{new}"] = tensor
    return state


def write(pipeline, path: Path) -> Path:
    state = {**unet_state(pipeline.unet), **vae_state(pipeline.vae)}
    for key, tensor in pipeline.text_encoder.state_dict().items():
        key = key if key.startswith("text_model.") else f"text_model.{key}"  # transformers 5
        state[f"cond_stage_model.transformer.{key}"] = tensor
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return Path(path)
