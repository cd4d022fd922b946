"""Device, dtype and speed-ups of the inference engine: each one a named decision.

    INFERENCE_DTYPE           fp32 | fp16 | bf16 (default: fp16 on a GPU, fp32 on a CPU). Any
                              of them runs on a CPU too, which is how the half-precision code
                              paths are tested without a GPU.
    INFERENCE_OPTIMIZATIONS   comma-separated; unset = the device's default, "none" = nothing:
      tf32              TF32 tensor cores for whatever still runs in fp32 (GPU)
      channels_last     UNet, VAE and ControlNet in channels_last memory format (faster convs)
      compile           torch.compile the UNet and ControlNet (the denoising loop) in place,
                        warmed up in setup() with one and two images, so that the batch size is
                        compiled dynamic before the first request
      compile_regional  compile only their repeated transformer blocks: a shorter compile, a
                        smaller speed-up (for when no compile cache can be shipped)
      batch             all num_outputs images of a request as one batch (they then arrive
                        together instead of streaming one by one)

GPU default: tf32, channels_last, compile, batch (../shared/reference/gpu.md: compiled, 0.48x
diffusers' time per image on an H100). CPU default: none: compiling takes far longer than it
saves on a CPU, and batching would only lose the streaming.

Compiling is kept across boots: `save_compile_cache()` writes torch's compile artefacts
(inductor and AOTAutograd caches, torch.compiler.save_cache_artifacts) and
`load_compile_cache()` reads them back before the warm-up, so a template whose build shipped
them does not recompile (buildkit/compile_cache.py makes them on a GPU at build time). The
artefacts depend on the model's shapes, not its weights: one cache serves every SD1.5 template.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import UserError

log = logging.getLogger(__name__)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OPTIMIZATIONS = ("tf32", "channels_last", "compile", "compile_regional", "batch")
GPU_DEFAULT = frozenset({"tf32", "channels_last", "compile", "batch"})
CPU_DEFAULT: frozenset[str] = frozenset()
COMPILE_CACHE = Path("compile-cache") / "torch-compile-artifacts.bin"  # in template-weights/


def device_and_dtype() -> tuple[str, torch.dtype]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = os.environ.get("INFERENCE_DTYPE") or ("fp16" if device == "cuda" else "fp32")
    if name not in DTYPES:
        raise UserError(f"INFERENCE_DTYPE={name!r} is not one of {', '.join(DTYPES)}")
    return device, DTYPES[name]


@dataclass(frozen=True)
class FastPath:
    chosen: frozenset[str]

    @classmethod
    def from_env(cls, device: str) -> FastPath:
        raw = os.environ.get("INFERENCE_OPTIMIZATIONS")
        if raw is None:
            return cls(GPU_DEFAULT if device == "cuda" else CPU_DEFAULT)
        chosen = {o.strip() for o in raw.split(",") if o.strip()} - {"none"}
        unknown = chosen - set(OPTIMIZATIONS)
        if unknown:
            raise UserError(
                f"INFERENCE_OPTIMIZATIONS: unknown {', '.join(sorted(unknown))}; "
                f"allowed: {', '.join(OPTIMIZATIONS)} or none"
            )
        return cls(frozenset(chosen))

    @property
    def compiles(self) -> bool:
        return bool(self.chosen & {"compile", "compile_regional"})

    @property
    def batches(self) -> bool:
        return "batch" in self.chosen

    def apply(self, formatted: list[torch.nn.Module], compiled: list[torch.nn.Module]) -> None:
        """TF32, memory format and compilation, in place (module identity is kept, so every
        pipeline sharing a module shares its compiled form)."""
        if "tf32" in self.chosen and torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if "channels_last" in self.chosen:
            for model in formatted:
                model.to(memory_format=torch.channels_last)
        for model in compiled:
            if "compile" in self.chosen:
                model.compile()
            elif "compile_regional" in self.chosen and getattr(model, "_repeated_blocks", None):
                model.compile_repeated_blocks()
        log.info("inference optimizations: %s", ", ".join(sorted(self.chosen)) or "none")


def load_compile_cache(path: Path) -> bool:
    """Hot-load compile artefacts saved by an earlier process; False when there are none."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        torch.compiler.load_cache_artifacts(path.read_bytes())
    except Exception as error:  # a cache from another torch is a miss, not a failure
        log.warning("compile cache %s not used: %s", path.name, error)
        return False
    log.info("compile cache loaded (%d bytes)", path.stat().st_size)
    return True


def save_compile_cache(path: Path) -> Path | None:
    """Write every artefact compiled in this process to `path`; None when nothing compiled."""
    artefacts = torch.compiler.save_cache_artifacts()
    if artefacts is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(artefacts[0])
    return path
