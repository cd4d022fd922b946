"""The SDXL trainer through Cog's real HTTP server: cog-sdxl's calls in, trained_model.tar out."""

import io
import tarfile
from pathlib import Path

import pytest

from buildkit.cog_client import CogServer, data_uri, decode_data_uri, succeeded

REPO = Path(__file__).resolve().parents[2]
REQUEST = dict(resolution=64, max_train_steps=2, train_batch_size=2, lr_warmup_steps=0, seed=1)


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_sdxl):
    work = tmp_path_factory.mktemp("sdxl-server")
    return {
        "BASE_MODEL_DIR": str(tiny_sdxl),
        "TRAINER_WORK_DIR": str(work / "work"),
        "PREPROCESS_WEIGHTS_DIR": str(work / "none"),
        "COG_TEST_LOG_DIR": str(work),
    }


def members(uri: str) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(decode_data_uri(uri))) as archive:
        return set(archive.getnames())


def test_a_photo_zip_in_gives_trained_model_tar_out_and_bad_inputs_are_named(env, photo_zip):
    with CogServer("trainer-sdxl", env=env) as server:
        status, body = server.predict(
            input_images=data_uri(photo_zip, "application/zip"), **REQUEST
        )
        succeeded(status, body)
        assert {"lora.safetensors", "embeddings.pti", "special_params.json"} <= members(
            body["output"]
        )
        assert "step 2/2 | loss" in body["logs"]
        status, body = server.predict(
            input_images=data_uri(photo_zip, "application/zip"), lr_scheduler="warp"
        )
        assert status == 422 and body["detail"][0]["loc"][-1] == "lr_scheduler"
        status, body = server.predict(input_images="data:text/plain;base64,bm90IHBob3Rvcw==")
        assert body["status"] == "failed" and "input_images:" in body["error"]
        assert "is not an archive" in body["error"] and "/tmp" not in body["error"]


def test_a_training_returns_weights_like_cog_sdxls_train(env, photo_zip):
    with CogServer("trainer-sdxl", env=env, mode="train") as training:
        status, body = training.train(
            input_images=data_uri(photo_zip, "application/zip"), is_lora=False, **REQUEST
        )
    succeeded(status, body)
    assert {"unet.safetensors", "embeddings.pti", "manifest.json"} <= members(
        body["output"]["weights"]
    )


def test_the_checked_in_sdxl_adapter_and_cog_yaml_are_rendered():
    from buildkit.cog_adapters import is_current
    from buildkit.targets import SDXL_COG_YAML, trainer_sdxl_target
    from trainer.sdxl_inputs import RENDER, adapters

    assert is_current(adapters(), REPO / "trainer" / "sdxl_predict.py"), f"stale; run {RENDER}"
    assert SDXL_COG_YAML.read_text() == trainer_sdxl_target().cog_yaml()


@pytest.mark.parametrize("entry", ["Predictor", "train"])
def test_cog_reads_every_cog_sdxl_input_with_its_name_type_and_default(entry):
    from buildkit.schema import load_info

    cog_sdxl = {  # replicate/cog-sdxl train.py (anchors §3.2)
        "input_images": None,
        "seed": None,
        "resolution": 768,
        "train_batch_size": 4,
        "num_train_epochs": 4000,
        "max_train_steps": 1000,
        "is_lora": True,
        "unet_learning_rate": 1e-6,
        "ti_lr": 3e-4,
        "lora_lr": 1e-4,
        "lora_rank": 32,
        "lr_scheduler": "constant",
        "lr_warmup_steps": 100,
        "token_string": "TOK",
        "caption_prefix": "a photo of TOK, ",
        "mask_target_prompts": None,
        "crop_based_on_salience": True,
        "use_face_detection_instead": False,
        "clipseg_temperature": 1.0,
        "verbose": True,
        "checkpointing_steps": 999999,
        "input_images_filetype": "infer",
    }
    fields = load_info(f"trainer/sdxl_predict.py:{entry}", REPO).inputs
    for name, default in cog_sdxl.items():
        assert fields[name].default == default, name
    ours = {"max_grad_norm", "mixed_precision", "gradient_checkpointing", "use_8bit_adam"}
    assert ours | {"snr_gamma", "offset_noise", "hflip", "resume", "save_sample_prompt"} <= set(
        fields
    )
