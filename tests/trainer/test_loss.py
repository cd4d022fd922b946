import pytest
import torch
from diffusers import DDPMScheduler

from trainer.loss import denoising_loss, loss_weights, sample_noise


def scheduler(prediction_type="epsilon"):
    return DDPMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=prediction_type,
    )


def test_offset_noise_adds_a_constant_per_channel():
    latents = torch.zeros(64, 4, 8, 8)
    plain = sample_noise(latents, torch.Generator().manual_seed(0), offset=0.0)
    offset = sample_noise(latents, torch.Generator().manual_seed(0), offset=0.5)
    shift = offset - plain
    # the difference is constant over each (example, channel) plane and not zero
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-6)
    assert shift[:, :, 0, 0].std() == pytest.approx(0.5, rel=0.2)


def test_min_snr_weights_downweight_low_noise_timesteps():
    timesteps = torch.tensor([10, 500, 990])
    weights = loss_weights(scheduler(), timesteps, snr_gamma=5.0)
    assert weights[0] < weights[1] <= 1.0
    assert weights[2] == pytest.approx(1.0)  # SNR below gamma: untouched
    assert torch.equal(loss_weights(scheduler(), timesteps, 0.0), torch.ones(3))


def test_v_prediction_uses_its_own_min_snr_form():
    timesteps = torch.tensor([10, 990])
    eps = loss_weights(scheduler("epsilon"), timesteps, 5.0)
    v = loss_weights(scheduler("v_prediction"), timesteps, 5.0)
    assert not torch.allclose(eps, v)


def test_prior_loss_is_weighted_and_added():
    prediction = torch.zeros(4, 4, 2, 2)
    target = torch.cat([torch.ones(2, 4, 2, 2), 2 * torch.ones(2, 4, 2, 2)])
    total, instance, prior = denoising_loss(prediction, target, torch.ones(4), 2, 0.5)
    assert instance.item() == 1.0 and prior.item() == 4.0
    assert total.item() == pytest.approx(1.0 + 0.5 * 4.0)


def test_without_class_rows_there_is_no_prior_term():
    total, instance, prior = denoising_loss(
        torch.zeros(2, 4, 2, 2), torch.ones(2, 4, 2, 2), torch.ones(2), 2, 1.0
    )
    assert prior is None and total.item() == instance.item() == 1.0
