"""Fetch real weights from the Hugging Face Hub, before `cog build` (they are baked into images).

    script/download-weights base [--dir base-weights]             # the trainer's SD1.5 base
    script/download-weights base --family sdxl [--refiner-dir D]  # SDXL, fp16-fix VAE, refiner
    script/download-weights preprocess [--dir preprocess-weights] # BLIP, CLIPSeg, OWL-ViT, Swin2SR
    script/download-weights template NAME [--dir template-weights] # a template's own weights
                                                  # (sdxl: + refiner/ and vae-fp16-fix/)

The base is Stable Diffusion 1.5 (fp16) with the fine-tuned `stabilityai/sd-vae-ft-mse` VAE, as
replicate/dreambooth uses, written in diffusers layout as safetensors. A template's own weights
are the safety checker and, for ControlNet templates, the ControlNet and its annotator; the SD
weights reach a template later, through /src/weights. Set HF_TOKEN (or pass --token) for gated
repositories. Without network or token this fails with a message that says so.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
VAE_REPO = "stabilityai/sd-vae-ft-mse"
SAFETY_CHECKER_REPO = "CompVis/stable-diffusion-safety-checker"
FEATURE_EXTRACTOR_REPO = "openai/clip-vit-base-patch32"
SDXL_REPO = "stabilityai/stable-diffusion-xl-base-1.0"
SDXL_REFINER_REPO = "stabilityai/stable-diffusion-xl-refiner-1.0"
SDXL_VAE_REPO = "madebyollin/sdxl-vae-fp16-fix"  # no NaNs in fp16 (diffusers#4325)
# trainer/preprocess.py's stages: folder -> (hub id, model class, processor class)
PREPROCESS = {
    "blip": (
        "Salesforce/blip-image-captioning-large",
        "BlipForConditionalGeneration",
        "BlipProcessor",
    ),
    "clipseg": ("CIDAS/clipseg-rd64-refined", "CLIPSegForImageSegmentation", "CLIPSegProcessor"),
    "face": ("google/owlvit-base-patch32", "OwlViTForObjectDetection", "OwlViTProcessor"),
    "swin2sr": (
        "caidas/swin2SR-classical-sr-x4-64",
        "Swin2SRForImageSuperResolution",
        "Swin2SRImageProcessor",
    ),
}


class DownloadError(RuntimeError):
    pass


def explain(error: Exception, what: str) -> DownloadError:
    """A download failure in words: no network, no access, or a missing file."""
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    if isinstance(error, GatedRepoError):
        hint = "the repository is gated: accept its license on huggingface.co and set HF_TOKEN"
    elif isinstance(error, RepositoryNotFoundError):
        hint = "repository not found, or private: check the name and HF_TOKEN"
    elif isinstance(error, (LocalEntryNotFoundError, ConnectionError, OSError)):
        hint = "the Hugging Face Hub is not reachable from this machine (no network?)"
    else:
        hint = f"{type(error).__name__}: {error}"
    return DownloadError(f"could not download {what}: {hint}")


def check_reachable(timeout: float = 5.0) -> None:
    """Fail in seconds, not after minutes of retries, when the hub cannot be reached."""
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname, endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        raise DownloadError(
            f"the Hugging Face Hub ({host}) is not reachable from this machine ({error}). "
            "Run this where there is network, before `cog build`; for offline work use "
            "script/make-tiny-weights."
        ) from None


def download_base(directory: Path, token: str | None) -> Path:
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline

    try:
        vae = AutoencoderKL.from_pretrained(VAE_REPO, torch_dtype=torch.float16, token=token)
        pipeline = StableDiffusionPipeline.from_pretrained(
            SD15_REPO,
            variant="fp16",
            torch_dtype=torch.float16,
            vae=vae,
            safety_checker=None,
            requires_safety_checker=False,
            token=token,
        )
    except Exception as error:
        raise explain(error, f"{SD15_REPO} + {VAE_REPO}") from None
    pipeline.save_pretrained(directory, safe_serialization=True)
    return directory


def download_sdxl(directory: Path, refiner_dir: Path | None, token: str | None) -> Path:
    import torch
    from diffusers import AutoencoderKL, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    try:
        vae = AutoencoderKL.from_pretrained(SDXL_VAE_REPO, torch_dtype=torch.float16, token=token)
        pipeline = StableDiffusionXLPipeline.from_pretrained(
            SDXL_REPO, variant="fp16", torch_dtype=torch.float16, vae=vae, token=token
        )
        refiner = None
        if refiner_dir is not None:
            refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(
                SDXL_REFINER_REPO, variant="fp16", torch_dtype=torch.float16, vae=vae, token=token
            )
    except Exception as error:
        raise explain(error, f"{SDXL_REPO} + {SDXL_VAE_REPO}") from None
    pipeline.save_pretrained(directory, safe_serialization=True)
    if refiner is not None:
        refiner.save_pretrained(refiner_dir, safe_serialization=True)
    return directory


def download_preprocess(directory: Path, token: str | None) -> Path:
    import transformers

    for folder, (repo, model_class, processor_class) in PREPROCESS.items():
        try:
            model = getattr(transformers, model_class).from_pretrained(repo, token=token)
            processor = getattr(transformers, processor_class).from_pretrained(repo, token=token)
        except Exception as error:
            raise explain(error, repo) from None
        model.save_pretrained(directory / folder, safe_serialization=True)
        processor.save_pretrained(directory / folder)
    return directory


def download_safety_checker(directory: Path, token: str | None) -> Path:
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    try:
        checker = StableDiffusionSafetyChecker.from_pretrained(SAFETY_CHECKER_REPO, token=token)
        processor = CLIPImageProcessor.from_pretrained(FEATURE_EXTRACTOR_REPO, token=token)
    except Exception as error:
        raise explain(error, SAFETY_CHECKER_REPO) from None
    checker.save_pretrained(directory, safe_serialization=True)
    processor.save_pretrained(directory)
    return directory


def download_sdxl_template(directory: Path, token: str | None) -> Path:
    """The SDXL template's own: refiner/ (its UNet is what it loads; it shares the base's
    second text encoder and VAE) and vae-fp16-fix/ (decodes fp16 without NaNs)."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionXLImg2ImgPipeline

    try:
        vae = AutoencoderKL.from_pretrained(SDXL_VAE_REPO, torch_dtype=torch.float16, token=token)
        refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(
            SDXL_REFINER_REPO, variant="fp16", torch_dtype=torch.float16, vae=vae, token=token
        )
    except Exception as error:
        raise explain(error, f"{SDXL_REFINER_REPO} + {SDXL_VAE_REPO}") from None
    refiner.save_pretrained(directory / "refiner", safe_serialization=True)
    vae.save_pretrained(directory / "vae-fp16-fix", safe_serialization=True)
    return directory


def download_template(name: str, directory: Path, token: str | None) -> Path:
    from buildkit.template_weights import download_control_weights  # per control type
    from core.manifest import Family
    from templates.specs import TEMPLATES

    download_safety_checker(directory / "safety-checker", token)
    if TEMPLATES[name].family is Family.SDXL:
        download_sdxl_template(directory, token)
    download_control_weights(name, directory, token)
    return directory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    base = sub.add_parser("base", help="SD1.5 + ft-MSE VAE (or SDXL) for the trainer")
    base.add_argument("--dir", type=Path, default=Path("base-weights"))
    base.add_argument("--family", choices=["sd15", "sdxl"], default="sd15")
    base.add_argument("--refiner-dir", type=Path, default=Path("refiner-weights"))
    preprocess = sub.add_parser("preprocess", help="the SDXL trainer's preprocessing models")
    preprocess.add_argument("--dir", type=Path, default=Path("preprocess-weights"))
    template = sub.add_parser("template", help="a template's checker, ControlNet and annotator")
    template.add_argument("name")
    template.add_argument("--dir", type=Path, default=Path("template-weights"))
    for command in (base, template, preprocess):
        command.add_argument("--token", default=os.environ.get("HF_TOKEN"))
    args = parser.parse_args(argv)
    if args.what == "template":
        from templates.specs import TEMPLATES

        if args.name not in TEMPLATES:
            sys.exit(
                f"download-weights: unknown template {args.name!r}; "
                f"choose one of {', '.join(TEMPLATES)}"
            )
    try:
        check_reachable()
        if args.what == "base" and args.family == "sdxl":
            path = download_sdxl(args.dir, args.refiner_dir, args.token)
        elif args.what == "base":
            path = download_base(args.dir, args.token)
        elif args.what == "preprocess":
            path = download_preprocess(args.dir, args.token)
        else:
            path = download_template(args.name, args.dir, args.token)
    except DownloadError as error:
        sys.exit(f"download-weights: {error}")
    print(f"weights written to {path}")


if __name__ == "__main__":
    main()
