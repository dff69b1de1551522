"""Where and in which precision the numbers are computed: Hugging Face Accelerate.

One callback owns the `Accelerator` because Accelerate ties device placement, distribution
(DDP under `accelerate launch`) and mixed precision together: precision is fixed when the
Accelerator is built, autocast is applied by `prepare(model)`, and the fp16 grad scaler lives
in `accelerator.backward` / the prepared optimizer.

Mixed precision: "bf16" autocasts to bfloat16 (CPU and GPU, no scaler needed: bf16 has fp32's
exponent range); "fp16" (GPU only) autocasts to float16 with a dynamic grad scaler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from difflab.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from difflab.training.learner import Learner

MixedPrecision = Literal["no", "bf16", "fp16"]


class AccelerateCB(Callback):
    """Puts model, optimizer and batches on the accelerator's device; DDP when launched so."""

    order = -100

    def __init__(self, *, mixed_precision: MixedPrecision = "no", cpu: bool = False):
        if mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(
                f"mixed_precision must be 'no', 'bf16' or 'fp16', got {mixed_precision!r}"
            )
        self.mixed_precision = mixed_precision
        self.cpu = cpu
        self.accelerator = None
        self._scaler_state: dict[str, Any] | None = None

    def before_fit(self, learn: Learner) -> None:
        from accelerate import Accelerator

        if self.accelerator is None:
            self.accelerator = self._build(Accelerator)
        check_data_sharding(learn.train_data, self.accelerator.num_processes)
        learn.accelerator = self.accelerator
        learn.model, learn.optimizer = self.accelerator.prepare(learn.model, learn.optimizer)

    def _build(self, accelerator_class):
        import torch

        on_cpu = self.cpu or not (torch.cuda.is_available() or torch.backends.mps.is_available())
        if self.mixed_precision == "fp16" and on_cpu:
            raise ValueError(
                "mixed_precision='fp16' needs a GPU; use 'bf16' on CPU "
                "(--train.mixed-precision bf16) or 'no'"
            )
        _release_precision_of_an_earlier_fit(self.mixed_precision)
        return accelerator_class(cpu=self.cpu, mixed_precision=self.mixed_precision)

    def before_batch(self, learn: Learner) -> None:
        from accelerate.utils import send_to_device

        learn.batch = send_to_device(learn.batch, self.accelerator.device)

    def cleanup_fit(self, learn: Learner) -> None:
        if learn.accelerator is not None:  # hand back the plain module for sampling/saving:
            # no DDP wrapper, no autocast around forward (a later fit prepares it again)
            learn.model = learn.accelerator.unwrap_model(learn.model, keep_fp32_wrapper=False)

    def state_dict(self) -> dict[str, Any]:
        scaler = None if self.accelerator is None else self.accelerator.scaler
        return {"scaler": scaler.state_dict() if scaler is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        scaler = None if self.accelerator is None else self.accelerator.scaler
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])


def _release_precision_of_an_earlier_fit(mixed_precision: str) -> None:
    """Accelerate keeps one mixed precision per process and refuses another one later; a
    single-process session (a notebook, a script that trains the feature classifier in fp32
    and then a diffusion model in bf16) may change it between fits. The distributed state
    (PartialState) is kept: under DDP every fit of the process uses the run's precision."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if not state or state.get("_mixed_precision") in (None, mixed_precision):
        return
    if AcceleratorState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=False)


def check_data_sharding(data: Any, num_processes: int) -> None:
    """Under DDP each process must see its own shard of the data (InMemoryBatches world_size)."""
    world_size = getattr(data, "world_size", None)
    if num_processes > 1 and world_size is not None and world_size != num_processes:
        raise ValueError(
            f"training data is split for world_size={world_size} but "
            f"{num_processes} processes run; build it with "
            "rank, world_size = difflab.training.process_rank()"
        )


def use_cpu(cpu: bool = False) -> bool:
    """True when training runs on the CPU: asked for, or no GPU/MPS device exists.

    Accelerate only sets up multi-process CPU training (gloo) when told `cpu=True`.
    """
    import torch

    return cpu or not (torch.cuda.is_available() or torch.backends.mps.is_available())


def process_rank(*, cpu: bool = False) -> tuple[int, int]:
    """(rank, world_size) of this process: (0, 1) unless started by `accelerate launch`
    or `torchrun` (use the same `cpu` as AccelerateCB)."""
    from accelerate import PartialState

    state = PartialState(cpu=use_cpu(cpu))
    return state.process_index, state.num_processes


def end_process_group() -> None:
    """Leave a torch.distributed group cleanly, after the other ranks: a gloo group still
    alive at interpreter exit can abort the process ("terminate called without an active
    exception") after a run that otherwise succeeded. Does nothing in a single process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()
