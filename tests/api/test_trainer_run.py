"""api/trainer_run.py against the real coglet serving the quick trainer."""

from __future__ import annotations

from api import trainer_run


def test_a_server_idle_without_its_terminal_webhook_fails_the_training(
    quick_context, tmp_path, monkeypatch
):
    """coglet cannot be polled, so a lost terminal webhook must not leave a training processing
    forever: once the server is idle for IDLE_GRACE, the run fails and says why."""
    monkeypatch.setattr(trainer_run, "IDLE_GRACE", 1.0)
    deliver = trainer_run.Run.event

    def lose_the_terminal_webhook(self, payload: dict) -> None:
        if payload.get("status") != "succeeded":
            deliver(self, payload)

    monkeypatch.setattr(trainer_run.Run, "event", lose_the_terminal_webhook)
    photos = tmp_path / "photos"
    photos.write_text("lost\n")
    (tmp_path / "tmp").mkdir()
    outcome = trainer_run.run(
        quick_context,
        {"steps": 2},
        {"instance_data": photos},
        tmp_path / "run",
        {"TMPDIR": str(tmp_path / "tmp")},
        on_update=lambda outcome: None,
        cancelled=lambda: False,
        setup_timeout=180,
    )
    assert outcome.status == "failed"
    assert "idle but never reported how the training ended" in outcome.error
    assert "step 2/2" in outcome.logs  # it did run: only its end was lost
