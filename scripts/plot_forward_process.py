"""Picture of the forward process: Fashion-MNIST images noisified at several t (DDPM eq. 4).

    DIFFLAB_DATA=../shared/datasets python scripts/plot_forward_process.py [--out PATH]

One row per image, one column per t in 0, 100, ..., 900, 999, with the default linear schedule
(beta_max 0.01): the reference work's picture for choosing a schedule by eye.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from difflab.data import load_images, scale_images
from difflab.diffusion import linear_schedule
from difflab.io.images import save_forward_process

TIMESTEPS = (0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/forward_process.png"))
    parser.add_argument("--beta-max", type=float, default=0.01)
    args = parser.parse_args()
    x0 = scale_images(load_images("fashion_mnist", "test").images[:6], -0.5, 0.5)
    alpha_bar = linear_schedule(1000, 1e-4, args.beta_max).alpha_bar[list(TIMESTEPS)]
    generator = torch.Generator().manual_seed(0)
    path = save_forward_process(
        args.out, x0, alpha_bar, value_range=(-0.5, 0.5), generator=generator, scale=3
    )
    print(path)


if __name__ == "__main__":
    main()
