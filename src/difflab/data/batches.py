"""`InMemoryBatches`: the whole data set as one scaled float tensor; a batch is one index_select.

Epoch e's order is a pure function of (seed, e), so (epoch, position) is all the state a
resumed run needs to hand out exactly the batches an uninterrupted run would have.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from difflab.data.scaling import as_uint8_tensor, scale_images


class InMemoryBatches:
    """Batches `(x, y)` of preloaded images: x float32 (B, C, H', W') in [low, high], y int64.

    uint8 images are scaled to [low, high] and padded; a float tensor (e.g. latents) is used
    as it is.

    With `world_size > 1` (DDP) each rank takes every world_size-th index of the same epoch
    permutation, so the ranks' samples are disjoint. drop_last=True drops the tail that does not
    fill a batch on every rank; drop_last=False pads the permutation with its first indices so
    that every rank gets the same number of batches (as torch's DistributedSampler does).
    """

    def __init__(
        self,
        images_uint8: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor | None = None,
        *,
        batch_size: int,
        low: float = -0.5,
        high: float = 0.5,
        pad: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str | None = None,
    ) -> None:
        # float tensors are taken as they are (latents, already scaled): low/high/pad unused
        floats = torch.is_tensor(images_uint8) and images_uint8.is_floating_point()
        images = images_uint8 if floats else as_uint8_tensor(images_uint8)
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        check_options(len(images), batch_size=batch_size, rank=rank, world_size=world_size)
        x = images.float().contiguous() if floats else scale_images(images, low, high, pad)
        self.x = x.to(device)  # (N, C, H', W') float32
        self.y = None if labels is None else as_labels(labels, len(images)).to(device)
        self.batch_size, self.shuffle, self.seed, self.drop_last = (
            batch_size,
            shuffle,
            seed,
            drop_last,
        )
        self.rank, self.world_size = rank, world_size
        self.epoch, self.position = 0, 0
        if len(self) == 0:
            raise ValueError(
                f"{len(images)} images give no batch of {batch_size} on each of "
                f"{world_size} rank(s) with drop_last=True: lower batch_size."
            )

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        per_rank = self.per_rank()
        if self.drop_last:
            return per_rank // self.batch_size
        return -(-per_rank // self.batch_size)

    def per_rank(self) -> int:
        n, ws = len(self.x), self.world_size
        return n // ws if self.drop_last else -(-n // ws)

    def order(self, epoch: int) -> torch.Tensor:
        """This rank's indices for `epoch`: a slice of one permutation shared by all ranks."""
        n, total = len(self.x), self.per_rank() * self.world_size
        if self.shuffle:
            perm = np.random.default_rng([self.seed, epoch]).permutation(n)
        else:
            perm = np.arange(n)
        if total > n:  # drop_last=False: repeat the first indices so all ranks get as many
            perm = np.concatenate([perm, perm[: total - n]])
        return torch.from_numpy(perm[self.rank : total : self.world_size]).to(self.x.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """The rest of the current epoch; the state moves on as each batch is handed out."""
        epoch, start, n_batches, bs = self.epoch, self.position, len(self), self.batch_size
        order = self.order(epoch)
        for b in range(start, n_batches):
            index = order[b * bs : (b + 1) * bs]
            # Count the batch as consumed before handing it out: a state_dict() taken while
            # it is being trained on resumes with the next one.
            self.epoch, self.position = (epoch + 1, 0) if b + 1 == n_batches else (epoch, b + 1)
            y = None if self.y is None else self.y[index]
            yield self.take(index), y

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """Images `index` as a new (B, C, H', W') tensor."""
        rows = self.x.view(len(self.x), -1)  # (N, C*H'*W')
        if rows.device.type == "cpu":
            # numpy's single-threaded gather: torch's CPU index_select runs 2 OpenMP threads
            # that collapsed to 30-80 batches/s when other processes held the cores (torch
            # 2.13, 2 cores); numpy held ~1200/s, as fast as torch on an idle machine.
            flat = torch.from_numpy(rows.numpy().take(index.numpy(), axis=0))
        else:
            flat = rows.index_select(0, index)
        return flat.view(len(index), *self.x.shape[1:])

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its first batch; the current epoch keeps its position (resume)."""
        if epoch != self.epoch:
            self.epoch, self.position = int(epoch), 0

    def state_dict(self) -> dict[str, int | bool]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "n_items": len(self.x),
        }

    def load_state_dict(self, state: dict[str, int | bool]) -> None:
        """Continue from `state`; the settings that decide the order must be the same."""
        for key in ("seed", "batch_size", "world_size", "shuffle", "drop_last", "n_items"):
            mine = self.state_dict()[key]
            if key in state and state[key] != mine:
                raise ValueError(
                    f"cannot resume: the saved state has {key}={state[key]} but this "
                    f"loader has {key}={mine}; the batch order would differ."
                )
        if not 0 <= state["position"] <= len(self):
            raise ValueError(f"position {state['position']} is outside 0..{len(self)}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        if self.position == len(self):  # a finished epoch: the next one starts
            self.epoch, self.position = self.epoch + 1, 0


def check_options(n: int, *, batch_size: int, rank: int, world_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    if n < world_size:
        raise ValueError(f"{n} images cannot be shared by {world_size} ranks")


def as_labels(labels: np.ndarray | torch.Tensor, n: int) -> torch.Tensor:
    y = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(y.shape)}")
    return y.to(torch.int64)
