"""Batches per second: InMemoryBatches vs a torch DataLoader with per-item transforms.

Both hand out the same thing, Fashion-MNIST train as float32 (256, 1, 32, 32) in [-0.5, 0.5]
(padded by 2) with int64 labels, in shuffled order; the DataLoader does what a typical
torchvision-style pipeline does per image: uint8 -> float, scale, pad, then collates.

    python benchmarks/bench_data.py [--root DIR] [--runs 5] [--workers 0 2]

Prints one line per loader and the ratio; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from difflab.data import InMemoryBatches, load_images

LOW, HIGH, PAD = -0.5, 0.5, 2


class PerItemDataset(torch.utils.data.Dataset):
    """The usual map-style dataset: every item transformed on its own."""

    def __init__(self, images, labels) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = torch.as_tensor(self.images[i]).float() / 255 * (HIGH - LOW) + LOW
        return F.pad(x, (PAD, PAD, PAD, PAD), value=LOW), int(self.labels[i])


def time_epoch(batches) -> tuple[float, int]:
    """Seconds for one pass and the number of batches it gave."""
    start, n = time.perf_counter(), 0
    for x, _ in batches:
        n += 1
        assert x.shape[-1] == 28 + 2 * PAD
    return time.perf_counter() - start, n


def median_rate(make, runs: int) -> tuple[float, float]:
    """(median batches/s over `runs` epochs, seconds to build the loader)."""
    start = time.perf_counter()
    loader = make()
    built = time.perf_counter() - start
    rates = []
    for _ in range(runs):
        seconds, n = time_epoch(loader)
        rates.append(n / seconds)
    return statistics.median(rates), built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="folder with the Fashion-MNIST files (else DIFFLAB_DATA)")
    parser.add_argument("--runs", type=int, default=5, help="epochs timed per loader")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[0], help="DataLoader workers")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    loads = []
    for _ in range(3):
        start = time.perf_counter()
        ds = load_images("fashion_mnist", "train", args.root)
        loads.append(time.perf_counter() - start)
    print(
        f"load_images('fashion_mnist'): median {statistics.median(loads):.3f} s "
        f"for {len(ds):,} images (gunzip + md5 + checks)"
    )

    bs = args.batch_size
    results = {"load_s": statistics.median(loads), "batch_size": bs}
    fast, built = median_rate(
        lambda: InMemoryBatches(ds.images, ds.labels, batch_size=bs, pad=PAD, seed=0), args.runs
    )
    print(f"InMemoryBatches:           {fast:9.1f} batches/s  (built in {built:.3f} s)")
    results["in_memory_batches_per_s"] = fast
    for workers in args.workers:
        rate, _ = median_rate(
            lambda w=workers: torch.utils.data.DataLoader(
                PerItemDataset(ds.images, ds.labels),
                batch_size=bs,
                shuffle=True,
                drop_last=True,
                num_workers=w,
                persistent_workers=w > 0,
            ),
            args.runs,
        )
        print(
            f"DataLoader (workers={workers}):   {rate:9.1f} batches/s  -> "
            f"InMemoryBatches is {fast / rate:.1f}x faster"
        )
        results[f"dataloader_w{workers}_batches_per_s"] = rate
        results[f"speedup_vs_w{workers}"] = fast / rate
    print(json.dumps(results))


if __name__ == "__main__":
    main()
