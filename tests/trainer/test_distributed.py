"""Several processes (torchrun/accelerate launch): shown on CPU with two gloo processes."""

import subprocess
import zipfile

from tests.pipeline_check import generate
from tests.trainer.helpers import cli


def test_two_processes_train_one_model_and_export_it_once(tmp_path, tiny_sd15, photo_zip):
    command, env = cli(
        tmp_path, tiny_sd15, photo_zip, 6, "--num_class_images", "2", "--checkpointing_steps", "3"
    )
    command[1:3] = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "trainer.cli"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "2 process(es)" in log
    assert log.count("generating 2 class images") == 1  # the main process generates...
    assert "reusing 2 cached class images" in log  # ...the other reuses its cache
    assert log.count("checkpoint saved at step 3") == 1 and log.count("step 6/6") == 1
    (output,) = tmp_path.glob("runs/*/output.zip")
    zipfile.ZipFile(output).extractall(tmp_path / "out")
    assert generate(tmp_path / "out").size == (64, 64)
    assert not list(tmp_path.glob("runs/*/instance*"))  # every process's scratch cleaned up
