"""Plot alpha_bar_t and its slope for the schedules the reference work compared.

    python scripts/plot_schedules.py [--out docs/schedules.png] [--n-steps 1000]

Linear beta_max 0.02 (DDPM), linear beta_max 0.01 (the reference work's pick: alpha_bar falls
more gently and ends well above 0) and cosine (Nichol & Dhariwal 2021, eq. 17).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from difflab.diffusion import cosine_schedule, linear_schedule


def schedules(n_steps: int) -> dict:
    return {
        "linear, beta_max 0.02": linear_schedule(n_steps, 1e-4, 0.02),
        "linear, beta_max 0.01": linear_schedule(n_steps, 1e-4, 0.01),
        "cosine (s = 0.008)": cosine_schedule(n_steps),
    }


def plot_schedules(out: Path, *, n_steps: int = 1000) -> Path:
    """Write a two-panel PNG: alpha_bar_t, and its slope alpha_bar_{t+1} - alpha_bar_t."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, (ax_ab, ax_slope) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for label, sched in schedules(n_steps).items():
        ab = sched.alpha_bar.numpy()
        ax_ab.plot(ab, label=f"{label} (alpha_bar_T = {ab[-1]:.2g})")
        ax_slope.plot(ab[1:] - ab[:-1], label=label)
    ax_ab.set(title="alpha_bar_t", xlabel="t", ylabel="alpha_bar")
    ax_slope.set(title="slope of alpha_bar_t", xlabel="t", ylabel="alpha_bar_{t+1} - alpha_bar_t")
    for ax in (ax_ab, ax_slope):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/schedules.png"))
    parser.add_argument("--n-steps", type=int, default=1000)
    args = parser.parse_args()
    print(plot_schedules(args.out, n_steps=args.n_steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
