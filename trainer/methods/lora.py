"""LoRA (Hu et al. 2021) on the UNet's attention, and on the text encoder's when asked, via peft.

The layers are peft's (`LoraConfig` + diffusers' `add_adapter`); only they train and only they
are checkpointed. The export is small and loads anywhere:

    pytorch_lora_weights.safetensors   diffusers/peft keys: `pipeline.load_lora_weights(dir)`
    lora_kohya.safetensors             kohya keys with the real alpha: Automatic1111, ComfyUI,
                                       InvokeAI (cog-sdxl#46: a Replicate LoRA was garbage there)
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from core.manifest import LORA_FILE, Method, Part
from trainer.methods.base import TEXT_ENCODER, Trainable, TrainingMethod

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
DIFFUSERS_FILE = LORA_FILE
KOHYA_FILE = "lora_kohya.safetensors"
COG_SDXL_FILE = "lora.safetensors"  # cog-sdxl's (SDXL only)
COG_SDXL_KEY = re.compile(r"(.+\.attn[12])\.(to_q|to_k|to_v|to_out\.0)\.lora_([AB])\.weight")


class LoraLayers(Trainable):
    key = "lora"

    def __init__(
        self,
        rank: int,
        alpha: float | None,
        train_text_encoder: bool,
        lr: float,
        seed: int,
        text_encoders: tuple[str, ...] = (TEXT_ENCODER,),
    ):
        self.rank, self.alpha = rank, float(alpha if alpha is not None else rank)
        self.train_text_encoder, self.lr, self.seed = train_text_encoder, lr, seed
        self.text_encoders = text_encoders
        self.configs: dict = {}  # component -> its LoraConfig

    def modules(self) -> tuple[str, ...]:
        return ("unet", *self.text_encoders) if self.train_text_encoder else ("unet",)

    def prepare(self, components: dict, device, dtype) -> None:
        from peft import LoraConfig

        # peft draws the initial lora_A from the global generator: seeded, so that a run's
        # weights depend only on its inputs (and a resumed run matches a fresh one).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for name in self.modules():
                config = LoraConfig(
                    r=self.rank,
                    lora_alpha=self.alpha,
                    init_lora_weights="gaussian",
                    target_modules=UNET_TARGETS if name == "unet" else TEXT_ENCODER_TARGETS,
                )
                add_lora(components[name], config)
                self.configs[name] = config

    def _lora_parameters(self, module) -> list:
        return [p for n, p in module.named_parameters() if ".lora_" in n and p.requires_grad]

    def parameter_groups(self, components: dict, lr_scale: float) -> list[dict]:
        params = [p for name in self.modules() for p in self._lora_parameters(components[name])]
        return [{"params": params, "lr": self.lr * lr_scale, "input": "lora_lr"}]

    def state_dict(self, components: dict) -> dict[str, torch.Tensor]:
        from peft.utils import get_peft_model_state_dict

        return {
            f"{name}.{key}": tensor
            for name in self.modules()
            for key, tensor in get_peft_model_state_dict(components[name]).items()
        }

    def load_state_dict(self, components: dict, state: dict[str, torch.Tensor]) -> None:
        from peft.utils import set_peft_model_state_dict

        for name in self.modules():
            set_peft_model_state_dict(components[name], _only(state, f"{name}."))

    def trained_parts(self) -> tuple[Part, ...]:
        return tuple(Part(name) for name in self.modules())

    def export(self, pipeline, directory: Path, dtype: torch.dtype) -> dict:
        from diffusers.utils import convert_state_dict_to_diffusers

        state = self.state_dict({name: getattr(pipeline, name) for name in self.modules()})
        layers = {}
        for name in self.modules():  # unet, then each text encoder that trains
            own = _only(state, f"{name}.")
            layers[f"{name}_lora_layers"] = convert_state_dict_to_diffusers(own)
            # the rank and alpha go with the file: without them a loader assumes alpha = rank
            layers[f"{name}_lora_adapter_metadata"] = self.configs[name].to_dict()
        type(pipeline).save_lora_weights(directory, weight_name=DIFFUSERS_FILE, **layers)
        family = "sdxl_base_v1-0" if "text_encoder_2" in self.text_encoders else "sd_v1"
        write_kohya(state, directory / KOHYA_FILE, self.rank, self.alpha, family)
        if "text_encoder_2" in self.text_encoders:
            write_cog_sdxl(_only(state, "unet."), directory / COG_SDXL_FILE, self.rank, self.alpha)
        return {
            "lora": DIFFUSERS_FILE,
            "lora_kohya": KOHYA_FILE,
            "lora_rank": self.rank,
            "lora_alpha": self.alpha,
        }


def add_lora(module, config) -> None:
    """peft's LoRA layers on `module`, named `default` as diffusers' `add_adapter` names them.

    transformers' own `add_adapter` wants peft >= 0.22, which is not released; peft's
    `inject_adapter_in_model` is what it calls, so the text encoder gets the same layers.
    """
    from peft import inject_adapter_in_model

    if hasattr(module, "set_adapters"):  # diffusers models
        module.add_adapter(config)
        return
    inject_adapter_in_model(config, module, adapter_name="default")
    module.peft_config = {"default": config}


def _only(state: dict, prefix: str) -> dict:
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def write_kohya(
    peft_state: dict[str, torch.Tensor], path: Path, rank: int, alpha: float, family: str = "sd_v1"
) -> None:
    """The LoRA in kohya keys (`lora_unet_…`, `lora_te1_…`) with its real alpha.

    diffusers' converter writes alpha = rank, which is right only when alpha equals the rank;
    a loader scales by alpha / rank, so any other alpha would load at the wrong strength.
    """
    from diffusers.utils import convert_state_dict_to_kohya
    from safetensors.torch import save_file

    kohya = convert_state_dict_to_kohya(peft_state)
    for key in kohya:
        if key.endswith(".alpha"):
            kohya[key] = torch.tensor(alpha)
    metadata = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": f"{alpha:g}",
        "ss_base_model_version": family,
    }
    tensors = {k: v.detach().contiguous() for k, v in kohya.items()}
    save_file(tensors, path, metadata=metadata)


def write_cog_sdxl(unet_state: dict[str, torch.Tensor], path: Path, rank: int, alpha: float):
    """The UNet LoRA as cog-sdxl's predictor loads it: its LoRAAttnProcessor2_0 state dict.

    Keys `<attention>.processor.<to_q|to_k|to_v|to_out>_lora.<down|up>.weight`; the rank is read
    from `up`'s second dimension and no alpha is stored (scale 1), so alpha / rank is folded into
    `up`. A LoRA on the text encoders has no place in this layout (it is in the other files).
    """
    from safetensors.torch import save_file

    tensors = {}
    for key, tensor in unet_state.items():
        match = COG_SDXL_KEY.fullmatch(key)
        if match is None:
            raise ValueError(f"unexpected LoRA key {key!r}")
        attention, projection, which = match.groups()
        value = tensor.detach().float() * (alpha / rank if which == "B" else 1.0)
        role = "up" if which == "B" else "down"
        name = "to_out" if projection == "to_out.0" else projection
        tensors[f"{attention}.processor.{name}_lora.{role}.weight"] = value.contiguous()
    save_file(tensors, path)


def lora(cfg, components: dict, side) -> TrainingMethod:
    part = LoraLayers(
        cfg.lora_rank,
        cfg.lora_alpha,
        cfg.train_text_encoder,
        cfg.lora_lr,
        cfg.seed,
        side.text_encoders,
    )
    return TrainingMethod("lora", Method.LORA, components, [part], side)
