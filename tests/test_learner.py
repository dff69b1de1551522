"""The Learner's loop: events, their order, cancellation, validation, the report bus, the
non-finite guard, hooks, the smoke callback, the bf16 path and gradient clipping."""

from __future__ import annotations

import logging

import pytest
import torch
from resume_worker import denoise_objective, make_data, make_model
from torch import nn

from difflab.training import (
    Callback,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    Learner,
    eval_model,
    find_callback,
)
from difflab.training.callbacks import (
    EMACB,
    AccelerateCB,
    ActivationHooksCB,
    CheckpointCB,
    GradClipCB,
    MetricsCB,
    NonFiniteGuardCB,
    SingleBatchCB,
)


class Recorder(Callback):
    def __init__(self, order: int = 0, raise_at: dict[str, tuple[int, type]] | None = None):
        self.order = order
        self.events: list[str] = []
        self.raise_at = raise_at or {}
        self.reports: dict[str, list[float]] = {}
        self._counts: dict[str, int] = {}

    def _record(self, learn: Learner, name: str) -> None:
        self.events.append(name if learn.training or "fit" in name else f"{name}:valid")
        self._counts[name] = self._counts.get(name, 0) + 1
        at = self.raise_at.get(name)
        if at is not None and self._counts[name] == at[0]:
            raise at[1]

    def on_report(self, learn, name, value, step):
        self.reports.setdefault(name, []).append(value)


for _event in (
    "before_fit",
    "before_epoch",
    "before_batch",
    "after_loss",
    "after_backward",
    "after_step",
    "after_batch",
    "after_epoch",
    "after_fit",
    "cleanup_batch",
    "cleanup_epoch",
    "cleanup_fit",
):
    setattr(Recorder, _event, lambda self, learn, _e=_event: self._record(learn, _e))


def tiny_learner(callbacks=(), *, n=16, valid=False, lr=1e-2, **kwargs) -> Learner:
    return Learner(
        make_model(),
        make_data(n=n),
        denoise_objective,
        lr=lr,
        callbacks=callbacks,
        valid_data=make_data(seed=5, n=8) if valid else None,
        **kwargs,
    )


TRAIN_BATCH = [
    "before_batch",
    "after_loss",
    "after_backward",
    "after_step",
    "after_batch",
    "cleanup_batch",
]
VALID_BATCH = ["before_batch:valid", "after_loss:valid", "after_batch:valid", "cleanup_batch:valid"]


def test_event_order_with_validation():
    rec = Recorder()
    learn = tiny_learner([rec], valid=True)  # 2 training batches, 1 validation batch
    learn.fit(2)
    epoch = [
        "before_epoch",
        *TRAIN_BATCH,
        *TRAIN_BATCH,
        "after_epoch",
        "cleanup_epoch",
        "before_epoch:valid",
        *VALID_BATCH,
        "after_epoch:valid",
        "cleanup_epoch:valid",
    ]
    assert rec.events == ["before_fit", *epoch, *epoch, "after_fit", "cleanup_fit"]
    assert learn.step == 4 and learn.epoch == 1


def test_callbacks_run_sorted_by_order():
    calls = []

    class Named(Callback):
        def __init__(self, name, order):
            self.name, self.order = name, order

        def before_fit(self, learn):
            calls.append(self.name)
            if self.name == "last":
                raise CancelFitException

    learn = tiny_learner([Named("last", 9), Named("first", -3), Named("mid", 0)])
    learn.fit(1)
    assert calls == ["first", "mid", "last"]


def test_cancel_batch_skips_the_step_but_runs_cleanup():
    rec = Recorder(raise_at={"after_loss": (1, CancelBatchException)})
    learn = tiny_learner([rec])
    before = [p.clone() for p in learn.model.parameters()]
    learn.fit(1)
    first = rec.events[2:5]
    assert first == ["before_batch", "after_loss", "cleanup_batch"]
    assert learn.step == 1  # only the second batch stepped
    assert any(not torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))


def test_cancel_epoch_and_cancel_fit():
    rec = Recorder(raise_at={"before_batch": (1, CancelEpochException)})
    learn = tiny_learner([rec])
    learn.fit(2)
    assert learn.step == 2  # epoch 1 cancelled at its first batch, epoch 2 ran 2 batches
    assert rec.events[:4] == ["before_fit", "before_epoch", "before_batch", "cleanup_batch"]
    assert rec.events[4] == "cleanup_epoch" and "after_fit" in rec.events

    rec = Recorder(raise_at={"after_step": (3, CancelFitException)})
    learn = tiny_learner([rec])
    learn.fit(5)
    assert learn.step == 3
    assert "after_fit" not in rec.events and rec.events[-1] == "cleanup_fit"
    assert rec.events[-3:] == ["cleanup_batch", "cleanup_epoch", "cleanup_fit"]


def test_validation_runs_without_gradients_and_reports_losses():
    grad_modes = []

    def objective(model, batch):
        grad_modes.append((model.training, torch.is_grad_enabled()))
        return denoise_objective(model, batch)

    rec = Recorder()
    learn = Learner(
        make_model(),
        make_data(n=64),
        objective,
        valid_data=make_data(n=16, seed=3),
        lr=1e-2,
        callbacks=[MetricsCB(report_every=2), rec],
    )
    learn.fit(3)
    assert set(grad_modes) == {(True, True), (False, False)}
    assert len(rec.reports["epoch/train_loss"]) == 3
    assert len(rec.reports["epoch/valid_loss"]) == 3
    assert len(rec.reports["train/loss"]) == 3 * 8 // 2
    assert rec.reports["epoch/train_loss"][-1] < rec.reports["epoch/train_loss"][0]


def test_single_batch_smoke_callback():
    rec = Recorder()
    learn = tiny_learner([rec, SingleBatchCB()], valid=True)
    learn.fit(3)
    assert learn.step == 1
    assert rec.events == [
        "before_fit",
        "before_epoch",
        *TRAIN_BATCH,
        "cleanup_epoch",
        "cleanup_fit",
    ]


# --- non-finite guard ---


def poisoned(bad_steps: set[int], kind: str):
    """An objective whose loss (kind="loss") or gradient (kind="grad") is NaN at some calls."""
    calls = [0]

    def objective(model, batch):
        calls[0] += 1
        loss = denoise_objective(model, batch)
        if calls[0] in bad_steps:
            if kind == "loss":
                return loss * float("nan")
            first = next(model.parameters())
            # sqrt at 0: a finite loss (0) whose gradient is 0 * inf = NaN
            return loss + torch.sqrt(0.0 * first.sum())
        return loss

    return objective


@pytest.mark.parametrize("kind", ["loss", "grad"])
def test_nonfinite_steps_are_skipped_with_a_message(kind, caplog):
    learn = Learner(
        make_model(),
        make_data(n=48),
        poisoned({2, 4}, kind),
        lr=1e-2,
        callbacks=[GradClipCB(1.0), NonFiniteGuardCB(3)],
    )
    with caplog.at_level(logging.WARNING, logger="difflab.training"):
        learn.fit(1)
    assert learn.step == 4  # 6 batches, 2 skipped
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    messages = [r.getMessage() for r in caplog.records]
    cause = "loss is nan" if kind == "loss" else "a gradient is not finite"
    assert any(m.startswith("step 1 (epoch 0): skipped") and cause in m for m in messages)
    assert any(m.startswith("step 2 (epoch 0): skipped") for m in messages)


def test_nonfinite_in_a_row_stops_with_last_checkpoint_intact(tmp_path):
    from difflab.io.checkpoint import list_checkpoints, load_checkpoint

    learn = Learner(
        make_model(),
        make_data(n=96),
        poisoned(set(range(5, 100)), "loss"),
        lr=1e-2,
        run_dir=tmp_path,
        callbacks=[NonFiniteGuardCB(3), CheckpointCB(every=2, keep=5)],
    )
    learn.fit(2)
    assert learn.step == 4  # steps 1..4 good, then 3 NaN losses in a row: stop
    saved = list_checkpoints(tmp_path / "checkpoints")
    assert [p.stem.split("step")[1] for p in saved] == ["2", "4"]
    state = load_checkpoint(saved[-1])
    for name, value in learn.model.state_dict().items():
        assert torch.isfinite(state["model"][name]).all()
        assert torch.equal(state["model"][name], value)  # the skipped steps changed nothing


# --- hooks, bf16 (schedules: test_lr_schedule.py; the lr finder: test_lr_finder.py) ---


def test_activation_hook_captures_a_named_layer():
    hooks = ActivationHooksCB(["body.1"])
    rec = Recorder()
    learn = tiny_learner([hooks, rec])
    learn.fit(1)
    assert hooks.outputs["body.1"].shape == (8, 32)
    assert (hooks.outputs["body.1"] >= 0).all()  # it is the ReLU's output
    assert len(rec.reports["activations/body.1/std"]) == 2
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        tiny_learner([ActivationHooksCB(["nope"])]).fit(1)


def test_bf16_autocast_path_on_cpu():  # conftest gives each test a fresh Accelerate state
    hooks = ActivationHooksCB(["body.0"])
    ema = EMACB(0.9)
    learn = tiny_learner(
        [AccelerateCB(mixed_precision="bf16", cpu=True), ema, hooks, MetricsCB()], n=64
    )
    learn.fit(2)
    assert hooks.outputs["body.0"].dtype == torch.bfloat16  # the forward ran in bf16
    assert all(p.dtype == torch.float32 for p in learn.model.parameters())  # master weights
    assert find_callback(learn, EMACB) is ema and eval_model(learn) is ema.model
    x = torch.randn(3, 1, 4, 4)
    assert ema.model(x).dtype == torch.float32
    assert torch.isfinite(learn.loss)


def test_bad_arguments_are_rejected_with_messages():
    with pytest.raises(ValueError, match="lr must be > 0"):
        tiny_learner(lr=0.0)
    with pytest.raises(ValueError, match="fp16' needs a GPU"):
        tiny_learner([AccelerateCB(mixed_precision="fp16", cpu=True)]).fit(1)
    with pytest.raises(ValueError, match="CheckpointCB needs a folder"):
        tiny_learner([CheckpointCB()]).fit(1)


# --- gradient clipping ---


class GradProbe(Callback):
    """Copies the gradients at after_backward; `stop` ends the fit there (before any step)."""

    def __init__(self, order: int, *, stop: bool = False):
        self.order, self.stop = order, stop
        self.grads: list[torch.Tensor] = []
        self.batch = None

    def after_backward(self, learn: Learner) -> None:
        self.grads = [p.grad.detach().clone() for p in learn.model.parameters()]
        self.batch = learn.batch
        if self.stop:
            raise CancelFitException


def big_loss(model: nn.Module, batch) -> torch.Tensor:
    """Deterministic (no noise draw) and steep, so the gradient norm is far above 1."""
    x, _ = batch
    return 100.0 * model(x).pow(2).mean()


@pytest.mark.parametrize("accelerate", [False, True], ids=["plain", "accelerate"])
def test_grad_clip_matches_torch_clip_grad_norm(accelerate):
    import copy

    reference = make_model()
    before, after = GradProbe(order=9), GradProbe(order=11, stop=True)  # GradClipCB is 10
    callbacks = [GradClipCB(0.5), before, after]
    if accelerate:
        callbacks.append(AccelerateCB(cpu=True))
    learn = Learner(copy.deepcopy(reference), make_data(), big_loss, callbacks=callbacks)
    learn.fit(1)
    assert learn.step == 0  # stopped after the first backward
    assert torch.nn.utils.get_total_norm(before.grads) > 5.0  # clipping had work to do
    big_loss(reference, after.batch).backward()
    norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
    assert torch.allclose(norm, torch.nn.utils.get_total_norm(before.grads))
    for mine, theirs in zip(after.grads, reference.parameters(), strict=True):
        assert torch.allclose(mine, theirs.grad, rtol=1e-5, atol=1e-7)
    assert torch.nn.utils.get_total_norm(after.grads).item() == pytest.approx(0.5, rel=1e-4)


def test_one_process_can_fit_in_fp32_then_bf16():
    """A notebook trains the feature classifier in fp32, then a diffusion model in bf16:
    Accelerate's per-process precision must follow each fit (it refused the second)."""
    from accelerate import Accelerator

    from difflab.training.callbacks import AccelerateCB

    assert AccelerateCB(mixed_precision="no")._build(Accelerator).mixed_precision == "no"
    assert AccelerateCB(mixed_precision="bf16")._build(Accelerator).mixed_precision == "bf16"


@pytest.mark.parametrize("change", ["dtype", "shape", "ema dtype"])
def test_a_checkpoint_that_does_not_fit_is_refused_before_anything_starts(tmp_path, change):
    """Hashes that agree, tensors that do not fit the network: refused naming the file (a
    shape made load_state_dict raise, a dtype was cast silently), before any callback ran."""
    from difflab.io.checkpoint import DamagedCheckpoint, list_checkpoints, save_checkpoint
    from difflab.io.checkpoint import load_checkpoint as read

    learn = tiny_learner([EMACB(decay=0.9), CheckpointCB(every=0)], run_dir=tmp_path)
    learn.fit(1)
    [saved] = list_checkpoints(tmp_path / "checkpoints")
    state = read(saved)
    key = "body.0.weight"
    copy = state["callbacks"]["EMACB"]["model"] if change == "ema dtype" else state["model"]
    copy[key] = copy[key][:3] if change == "shape" else copy[key].half()
    redone = save_checkpoint(tmp_path / "other", state, step=learn.step)  # hashes that agree
    recorder = Recorder()
    fresh = tiny_learner([EMACB(decay=0.9), recorder], run_dir=tmp_path)
    with pytest.raises(DamagedCheckpoint, match=rf"{redone.stem}\.safetensors: .*{key} is") as err:
        fresh.fit(2, resume=redone)
    assert "move it out of checkpoints/" in str(err.value) and "\n" not in str(err.value)
    assert recorder.events == []  # no callback started: no file of the run was touched
    assert torch.equal(fresh.read_checkpoint(saved)[1]["model"][key], read(saved)["model"][key])
