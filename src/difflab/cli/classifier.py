"""`difflab classifier train`: train the Fashion-MNIST feature classifier used for FID/KID.

    difflab classifier train --dataset fashion_mnist --out src/difflab/assets

writes fmnist_classifier.safetensors, fmnist_classifier.json (architecture, preprocessing,
data checksum, test accuracy, sha256s) and fmnist_test_stats.safetensors (float64 mean and
covariance of the test set's pooled features). A JSON summary goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help="train the feature classifier used for FID/KID",
        description="Train the Fashion-MNIST ResNet whose pooled features difflab's FID/KID use.",
    )
    actions = parser.add_subparsers(dest="classifier_action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train it and write weights + reference statistics")
    train.add_argument(
        "--dataset",
        default="fashion_mnist",
        choices=["fashion_mnist"],
        help="training dataset (default: fashion_mnist)",
    )
    train.add_argument("--root", default=None, help="dataset folder (else $DIFFLAB_DATA)")
    train.add_argument("--epochs", type=int, default=12, help="training epochs (default: 12)")
    train.add_argument("--batch-size", type=int, default=256, help="batch size (default: 256)")
    train.add_argument("--lr", type=float, default=1e-2, help="peak one-cycle LR (default: 1e-2)")
    train.add_argument(
        "--limit", type=int, default=None, help="train on the first N images only (smoke runs)"
    )
    train.add_argument(
        "--precision",
        choices=["bf16", "no"],
        default="bf16",
        help="autocast dtype for training (default: bf16)",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.add_argument(
        "--out",
        default="classifier",
        help="output folder (default: ./classifier; the shipped copy lives in src/difflab/assets)",
    )
    train.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (1 avoids spin-waiting on a busy shared machine)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from difflab.training.fit_classifier import (
        ClassifierTrainConfig,
        fit_classifier,
        save_classifier_assets,
    )

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    config = ClassifierTrainConfig(
        dataset=args.dataset,
        root=args.root,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        limit=args.limit,
        precision=args.precision,
        seed=args.seed,
    )
    model, record = fit_classifier(config, progress=not args.no_progress)
    meta = save_classifier_assets(model, record, args.out, progress=not args.no_progress)
    summary = {
        k: meta[k]
        for k in ("test_accuracy", "train_seconds", "weights_sha256", "feature_dim", "data_sha256")
    }
    summary["out"] = str(args.out)
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0
