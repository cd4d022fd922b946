import json

import torch
from torch import nn

from trainer.checkpoints import CheckpointStore, TrainingState


def make_state(step: int, with_8bit_like_state: bool = False) -> TrainingState:
    torch.manual_seed(step)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    state = optimizer.state_dict()
    if with_8bit_like_state:
        state["state"][0]["qmap1"] = torch.arange(256, dtype=torch.uint8)
    return TrainingState(
        step=step,
        modules={"unet": model.state_dict()},
        optimizer=state,
        lr_scheduler={"last_epoch": step, "base_lrs": [1e-3], "_step_count": 4},
        generator=torch.Generator().manual_seed(7).get_state(),
    )


def test_state_round_trips_exactly_including_integer_keys_and_tuples(tmp_path):
    store = CheckpointStore(tmp_path)
    original = make_state(5, with_8bit_like_state=True)
    loaded = store.load(store.save(original))
    assert loaded.step == 5
    assert torch.equal(loaded.modules["unet"]["weight"], original.modules["unet"]["weight"])
    assert set(loaded.optimizer["state"]) == {0, 1}  # integer keys survive JSON
    exp_avg = original.optimizer["state"][0]["exp_avg"]
    assert torch.equal(loaded.optimizer["state"][0]["exp_avg"], exp_avg)
    assert loaded.optimizer["param_groups"][0]["betas"] == [0.9, 0.99]
    assert loaded.lr_scheduler == original.lr_scheduler
    assert torch.equal(loaded.generator, original.generator)
    model = nn.Linear(3, 2)
    torch.optim.AdamW(model.parameters()).load_state_dict(loaded.optimizer)  # accepted as-is


def test_checkpoint_holds_only_safetensors_and_json(tmp_path):
    path = CheckpointStore(tmp_path).save(make_state(3))
    assert sorted(p.name for p in path.iterdir()) == [
        "modules.safetensors",
        "state.json",
        "state.safetensors",
    ]
    json.loads((path / "state.json").read_text())


def test_only_the_latest_checkpoint_is_kept(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(make_state(5))
    store.save(make_state(10))
    assert [p.name for p in tmp_path.iterdir()] == ["step-000010"]
    assert store.latest().name == "step-000010"


def test_a_half_written_checkpoint_is_ignored(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(make_state(5))
    (tmp_path / "step-000010.partial").mkdir()  # a run killed while saving step 10
    assert store.latest().name == "step-000005"
