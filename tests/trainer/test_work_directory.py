"""What runs leave on disk: scratch never, checkpoints only to resume, outputs by the policy."""

import zipfile

import pytest

from core.errors import UserError
from tests.trainer.helpers import train
from trainer import retention


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_a_run_failing_on_a_photo_leaves_nothing_it_extracted(monkeypatch, tmp_path, tiny_sd15):
    photos = tmp_path / "photos.zip"
    with zipfile.ZipFile(photos, "w") as archive:
        archive.writestr("big.bmp", b"BM" + b"\0" * 500_000)  # not a readable image
    with pytest.raises(UserError, match=r"big\.bmp is not a readable image"):
        train(monkeypatch, tiny_sd15, photos, tmp_path / "work")
    assert [f for f in files_under(tmp_path / "work") if not f.endswith(".lock")] == []


def test_a_cancelled_run_keeps_only_its_checkpoint(monkeypatch, tmp_path, tiny_sd15, photo_zip):
    def cancel(event):
        if event.step == 2:
            raise KeyboardInterrupt  # what Cog's CancelationException does, a BaseException

    with pytest.raises(KeyboardInterrupt):
        train(
            monkeypatch,
            tiny_sd15,
            photo_zip,
            tmp_path / "work",
            checkpointing_steps=1,
            save_sample_prompt="a photo of sks cat",
            callbacks=[cancel],
        )
    (run,) = (tmp_path / "work" / "runs").iterdir()
    kept = {p.name for p in run.iterdir()}
    assert kept == {".lock", "checkpoints"}
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000001"]


def test_finished_runs_keep_outputs_up_to_the_policy(monkeypatch, tmp_path, tiny_sd15, photo_zip):
    monkeypatch.setenv("TRAINER_KEEP_RUNS", "2")
    outputs = [
        train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "work", seed=seed).output
        for seed in (1, 2, 3)
    ]
    assert [p.exists() for p in outputs] == [False, True, True]
    for output in outputs[1:]:
        assert {p.name for p in output.parent.iterdir()} == {".lock", "output.zip"}


def test_the_byte_budget_removes_the_oldest_runs_first(monkeypatch, tmp_path, tiny_sd15, photo_zip):
    first = train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "work", seed=1).output
    size = retention.folder_bytes(tmp_path / "work")
    monkeypatch.setenv("TRAINER_MAX_WORK_GB", str(1.5 * size / retention.GB))
    second = train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "work", seed=2).output
    assert first.exists() and second.exists()  # under budget when the second started
    third = train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "work", seed=3).output
    assert not first.exists() and second.exists() and third.exists()  # under budget again


def test_class_image_sets_are_bounded(monkeypatch, tmp_path, tiny_sd15, photo_zip):
    monkeypatch.setenv("TRAINER_KEEP_CLASS_SETS", "1")
    for prompt in ("a photo of a cat", "a painting of a cat"):
        train(monkeypatch, tiny_sd15, photo_zip, tmp_path / "work", class_prompt=prompt)
    assert len(list((tmp_path / "work" / "class-images").iterdir())) == 1


def test_an_identical_run_cannot_start_while_one_is_in_progress(tmp_path):
    run = tmp_path / "work" / "runs" / "abc"
    with retention.claim(run), pytest.raises(UserError, match="already in progress"):  # noqa: SIM117
        with retention.claim(run):
            pass
    with retention.claim(run):  # released again
        pass


@pytest.mark.parametrize(
    ("name", "value"), [("TRAINER_KEEP_RUNS", "0"), ("TRAINER_MAX_WORK_GB", "lots")]
)
def test_a_bad_policy_setting_is_an_error_naming_it(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=rf"{name}='{value}' must be a number"):
        retention.Retention.from_env()
