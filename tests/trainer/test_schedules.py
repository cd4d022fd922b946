import pytest
import torch

from trainer.config import LRScheduler, TrainConfig
from trainer.loop import make_schedule


def learning_rates(tmp_path, name: str, warmup: int = 0, steps: int = 20) -> list[float]:
    data = tmp_path / "d.zip"
    data.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    cfg = TrainConfig(
        instance_prompt="a sks dog",
        class_prompt="a dog",
        instance_data=data,
        lr_scheduler=name,
        lr_warmup_steps=warmup,
        learning_rate=1.0,
    )
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = make_schedule(cfg, optimizer, total=steps, world=1)
    values = []
    for _ in range(steps):
        values.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    return values


@pytest.mark.parametrize("name", [s.value for s in LRScheduler if s is not LRScheduler.CONSTANT])
def test_every_schedule_shapes_the_learning_rate(tmp_path, name):
    constant = learning_rates(tmp_path, "constant")
    shaped = learning_rates(tmp_path, name, warmup=5)
    assert constant == [1.0] * 20
    assert shaped != constant and shaped[0] == 0.0  # warms up from zero


def test_linear_decays_to_zero_after_warmup(tmp_path):
    rates = learning_rates(tmp_path, "linear", warmup=5)
    assert rates[:6] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert rates[5:] == sorted(rates[5:], reverse=True) and rates[-1] < 0.1
