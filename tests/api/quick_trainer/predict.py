"""A quick trainer version: a real Cog model that returns an output.zip in a moment.

Any trainer works with the API as long as it returns an output.zip (seed 000); this one lets the
flow's tests (queues, workers, webhooks, failures) and the benchmark run many trainings without
paying for real ones. It records every run in $QUICK_TRAINER_LEDGER (when set), so a test can
count how often each training ran, and on which GPU.
"""

import os
import time
import zipfile

from cog import BasePredictor, Input, Path


class Predictor(BasePredictor):
    def predict(
        self,
        instance_data: Path = Input(description="Any file; its first line names the run."),
        instance_prompt: str = Input(default="a photo of sks thing", description="Recorded."),
        seconds: float = Input(default=0.0, ge=0.0, le=600.0, description="How long to take."),
        steps: int = Input(default=2, ge=1, le=1000, description="Progress lines to print."),
        weights_mb: int = Input(default=0, ge=0, le=100000, description="Size of the weights."),
        fail: bool = Input(default=False, description="Fail instead of training."),
    ) -> Path:
        name = instance_data.read_bytes().split(b"\n")[0].decode(errors="replace")
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "none")
        ledger = os.environ.get("QUICK_TRAINER_LEDGER")
        if ledger:
            with Path(ledger).open("a") as out:
                out.write(f"{name} gpu={gpu} start={time.time():.3f}\n")
        print(f"training {name} on gpu {gpu}", flush=True)
        if fail:
            raise ValueError("instance_data: this trainer was asked to fail")
        for step in range(1, steps + 1):
            time.sleep(seconds / steps)
            print(f"step {step}/{steps}", flush=True)
        out = Path(os.environ.get("TMPDIR", "/tmp")) / f"output-{os.getpid()}-{time.time_ns()}.zip"
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("model_index.json", '{"_class_name": "StableDiffusionPipeline"}')
            archive.writestr("manifest.json", f'{{"instance_prompt": "{instance_prompt}"}}')
            with archive.open("unet/diffusion_pytorch_model.safetensors", "w") as weights:
                chunk = os.urandom(1024 * 1024)
                for _ in range(weights_mb):
                    weights.write(chunk)
        return out
