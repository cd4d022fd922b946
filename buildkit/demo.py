"""`make demo`: the whole product end to end on a CPU, offline, in about a minute.

1. tiny SD1.5 weights (random, real layout and tokenizer) as the trainer's base;
2. the trainer behind Cog's real HTTP server, POSTed a zip of photos that ship inside
   scikit-image, exactly as `cog predict -i instance_data=@photos.zip` would send it;
3. its output.zip unzipped where the build step would copy it (/src/weights);
4. the vanilla template behind the real server on those weights, generating images with the
   instance prompt recorded by the trainer;
5. the same training through the trainings API (buildkit/demo_api.py): pushed versions, POST
   /v1/trainings, a new version of the model, a signed webhook, and an image from that version.

Everything lands in demo-output/. The images are noise: the weights are random and tiny. What
the demo shows is that every piece works together, the same way it does on a GPU.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

from buildkit.cog_client import CogServer, data_uri, decode_data_uri, succeeded
from buildkit.sample_photos import write_photo_zip
from buildkit.targets import REPO_ROOT

OUT = REPO_ROOT / "demo-output"
CACHE = REPO_ROOT / ".cache" / "demo"
TRAINING = dict(
    instance_prompt="a photo of sks cat",
    class_prompt="a photo of a cat",
    resolution=64,
    max_train_steps=120,
    learning_rate=2e-4,
    num_class_images=4,
    save_sample_prompt="a photo of sks cat on the moon",
    n_save_sample=2,
    save_infer_steps=10,
    seed=42,
)


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def prepare() -> tuple[Path, Path, Path]:
    from buildkit.tiny import write_sd15
    from buildkit.tiny_templates import write_template_weights

    base, template = CACHE / "base-weights", CACHE / "template-weights-vanilla"
    if not (base / "model_index.json").is_file():
        write_sd15(base)
    if not (template / "safety-checker" / "config.json").is_file():
        write_template_weights("vanilla", template)
    OUT.mkdir(exist_ok=True)
    photos = write_photo_zip(OUT / "photos.zip", size=(128, 96))
    return base, template, photos


def train(base: Path, photos: Path) -> Path:
    env = {
        "BASE_MODEL_DIR": str(base),
        "TRAINER_WORK_DIR": str(OUT / "work"),
        "COG_TEST_LOG_DIR": str(OUT),
    }
    with CogServer("trainer", env=env) as server:
        started = time.monotonic()
        body = succeeded(
            *server.predict(instance_data=data_uri(photos, "application/zip"), **TRAINING)
        )
    for line in body["logs"].splitlines()[-4:]:
        print("    " + line)
    print(f"    trained in {time.monotonic() - started:.1f}s, metrics {body['metrics']}")
    weights = OUT / "weights"
    with zipfile.ZipFile(io.BytesIO(decode_data_uri(body["output"]))) as archive:
        archive.extractall(weights)
        (OUT / "output.zip").write_bytes(decode_data_uri(body["output"]))
    return weights


def generate(weights: Path, template: Path) -> list[Path]:
    env = {
        "WEIGHTS_DIR": str(weights),
        "TEMPLATE_WEIGHTS_DIR": str(template),
        "COG_TEST_LOG_DIR": str(OUT),
    }
    with CogServer("vanilla", env=env) as server:
        body = succeeded(
            *server.predict(width=64, height=64, num_outputs=2, num_inference_steps=20, seed=7)
        )
    paths = []
    for index, uri in enumerate(body["output"]):
        path = OUT / f"image-{index}.png"
        path.write_bytes(decode_data_uri(uri))
        paths.append(path)
    return paths


def main() -> None:
    started = time.monotonic()
    step("tiny weights and photos (offline)")
    base, template, photos = prepare()
    step("training: POST /predictions to the trainer's Cog server")
    weights = train(base, photos)
    step(f"output.zip unzipped to {weights.relative_to(REPO_ROOT)} (as COPY weights /src/weights)")
    step("generating: POST /predictions to the vanilla template's Cog server")
    images = generate(weights, template)
    step("the same training through the API: script/push, script/serve api, POST /v1/trainings")
    from buildkit import demo_api

    api_image = demo_api.main(base, template, photos, TRAINING, OUT / "api")
    step(f"done in {time.monotonic() - started:.0f}s")
    print(f"    trainer output: {(OUT / 'output.zip').relative_to(REPO_ROOT)}")
    for path in [*images, api_image]:
        print(f"    image:          {path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
