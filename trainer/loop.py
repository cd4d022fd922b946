"""The one training loop, shared by every method.

It owns the optimizer (AdamW, or bitsandbytes' 8-bit AdamW), the learning-rate schedule,
gradient accumulation and clipping, mixed precision (through accelerate), checkpoints and
resume, and progress. A method (trainer/methods/) says which modules train and what the UNet is
conditioned on. All randomness comes from one generator whose state is checkpointed, and the
example order is a function of (seed, epoch), so a resumed run ends with the same weights as
one that was never interrupted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from diffusers.optimization import get_scheduler

from trainer.checkpoints import CheckpointStore, TrainingState
from trainer.config import LRScheduler, TrainConfig
from trainer.data import TrainingSet
from trainer.divergence import DivergenceGuard
from trainer.loss import denoising_loss, loss_weights, sample_noise, sample_timesteps, target_for
from trainer.methods import TrainingMethod
from trainer.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class LoopResult:
    steps: int
    resumed_from: int
    summary: dict


@dataclass(frozen=True)
class StepEvent:
    """What a step callback sees after optimizer step `step` (1-based) of `total`."""

    step: int
    total: int
    loss: torch.Tensor  # on the device: reading it (`.item()`) waits for the GPU
    lr: float
    method: TrainingMethod  # what trains, for tests and benches that inspect it


StepCallback = Callable[[StepEvent], None]


def make_optimizer(cfg: TrainConfig, groups: list[dict], device) -> torch.optim.Optimizer:
    """AdamW over the method's parameter groups, each with its own learning rate."""
    kwargs = dict(
        lr=groups[0]["lr"],
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        weight_decay=cfg.adam_weight_decay,
        eps=cfg.adam_epsilon,
    )
    if cfg.use_8bit_adam:
        import bitsandbytes as bnb  # imported only when asked for: it is slow to import

        return bnb.optim.AdamW8bit(groups, **kwargs)
    # Decision: fused AdamW on CUDA (one kernel for all parameters instead of a loop of them).
    return torch.optim.AdamW(groups, fused=device.type == "cuda", **kwargs)


def make_schedule(cfg: TrainConfig, optimizer, total: int, world: int):
    # diffusers' "constant" ignores warmup; asking for warmup means constant after warming up.
    name = cfg.lr_scheduler
    if name is LRScheduler.CONSTANT and cfg.lr_warmup_steps:
        name = LRScheduler.CONSTANT_WITH_WARMUP
    # accelerate steps a prepared scheduler once per process, hence the factor `world`.
    return get_scheduler(
        name.value,
        optimizer=optimizer,
        num_warmup_steps=cfg.lr_warmup_steps * world,
        num_training_steps=total * world,
    )


def micro_step_loss(
    method: TrainingMethod,
    data: TrainingSet,
    indices,
    noise_scheduler,
    generator: torch.Generator,
    cfg: TrainConfig,
) -> torch.Tensor:
    batch = data.batch(indices, generator)
    latents = batch.latents
    noise = sample_noise(latents, generator, cfg.offset_noise)
    timesteps = sample_timesteps(noise_scheduler, len(latents), generator, latents.device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    conditioning = method.conditioning(batch.input_ids)
    prediction = method.predict(noisy, timesteps, conditioning, batch.time_ids)
    target = target_for(noise_scheduler, latents, noise, timesteps)
    weights = loss_weights(noise_scheduler, timesteps, cfg.snr_gamma)
    total, _, _ = denoising_loss(
        prediction, target, weights, batch.n_instance, cfg.prior_loss_weight, batch.masks
    )
    return total


def _quiet(*args, **kwargs) -> None:
    """Progress lines come from the main process only."""


def capture(accelerator, method, optimizer, schedule, generator, step) -> TrainingState:
    return TrainingState(
        step=step,
        modules=method.state_dict(),
        optimizer=optimizer.state_dict(),
        lr_scheduler=schedule.state_dict(),
        generator=generator.get_state(),
    )


def restore(state: TrainingState, accelerator, method, optimizer, schedule, generator) -> int:
    method.load_state_dict(state.modules)
    optimizer.load_state_dict(state.optimizer)
    schedule.load_state_dict(state.lr_scheduler)
    generator.set_state(state.generator)
    return state.step


def run(
    cfg: TrainConfig,
    method: TrainingMethod,
    data: TrainingSet,
    noise_scheduler,
    accelerator,
    store: CheckpointStore,
    total: int,
    callbacks: Sequence[StepCallback] = (),
) -> LoopResult:
    world, rank = accelerator.num_processes, accelerator.process_index
    trainable = method.trainable()
    method.plan(total)
    groups = method.parameter_groups(cfg.lr_scale(world))
    optimizer = make_optimizer(cfg, groups, accelerator.device)
    schedule = make_schedule(cfg, optimizer, total, world)
    names = list(trainable)
    *wrapped, optimizer, schedule = accelerator.prepare(*trainable.values(), optimizer, schedule)
    modules = dict(zip(names, wrapped, strict=True))
    method.use(modules)
    generator = torch.Generator().manual_seed(cfg.seed + rank)

    start = 0
    latest = store.latest() if cfg.resume else None
    if latest is not None:
        start = restore(store.load(latest), accelerator, method, optimizer, schedule, generator)
        log.info("resuming from %s (step %d of %d)", latest.name, start, total)
        if accelerator.is_main_process:
            print(f"resuming from checkpoint at step {start}/{total}", flush=True)
    progress = Progress(
        total=total, start_step=start, emit=print if accelerator.is_main_process else _quiet
    )
    guard = DivergenceGuard(
        accelerator.device,
        method.learning_rates(cfg.lr_scale(world)),
        check_gradients=accelerator.mixed_precision != "fp16",
    )
    parameters = method.parameters()
    for step in range(start, total):
        method.at_step(step)
        loss_value = torch.zeros((), device=accelerator.device)
        grad_norm = None
        for micro in range(cfg.gradient_accumulation_steps):
            micro_index = step * cfg.gradient_accumulation_steps + micro
            indices = data.indices(micro_index, cfg.train_batch_size, cfg.seed, rank, world)
            with accelerator.accumulate(*modules.values()):
                loss = micro_step_loss(method, data, indices, noise_scheduler, generator, cfg)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    grad_norm = accelerator.clip_grad_norm_(parameters, cfg.max_grad_norm)
                optimizer.step()
                method.after_step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
            loss_value += loss.detach() / cfg.gradient_accumulation_steps
        done = step + 1
        guard.observe(done, loss_value, grad_norm)
        if guard.due(done):
            guard.check()
        event = StepEvent(done, total, loss_value, schedule.get_last_lr()[0], method)
        progress.update(event.step, event.loss, event.lr)
        for callback in callbacks:
            callback(event)
        if cfg.checkpointing_steps and done % cfg.checkpointing_steps == 0 and done < total:
            guard.check()  # never checkpoint NaN weights
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                store.save(capture(accelerator, method, optimizer, schedule, generator, done))
    guard.check()
    accelerator.wait_for_everyone()
    return LoopResult(steps=total, resumed_from=start, summary=progress.summary())
