"""`difflab classifier train|ls`: feature models (classifier + card + reference statistics).

    difflab classifier train --dataset mnist          # -> <cache>/feature-models/<id>/
    difflab classifier train --dataset ./shapes       # a folder of class sub-folders
    difflab classifier ls [--json]

`train`'s flags are ClassifierConfig's fields (config/classifier.py); the card goes to stdout
as JSON. `ls` prints a table to stderr, or the cards as JSON to stdout with --json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from difflab.cli.config_flags import add_dataclass_arguments, dataclass_from_args
from difflab.config.classifier import ClassifierConfig

DESCRIPTION = """\
Train the ResNet whose pooled features difflab's domain FID/KID use, on a known data set
(fashion_mnist, mnist, cifar10) or a folder with one sub-folder of images per class, and
register it with its card and the test split's reference statistics."""


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name, help="train and list the feature models used for FID/KID", description=DESCRIPTION
    )
    actions = parser.add_subparsers(dest="classifier_action", metavar="ACTION", required=True)
    train = actions.add_parser(
        "train", help="train one and write weights + card + reference statistics"
    )
    add_dataclass_arguments(train, ClassifierConfig, title="classifier options")
    train.add_argument(
        "--out", default=None, help="write the feature model here instead of the registry"
    )
    _registry_flag(train)
    train.add_argument("--no-progress", action="store_true", help="plain log lines, no bars")
    train.set_defaults(handler=run_train)
    listing = actions.add_parser("ls", help="list the registered feature models")
    listing.add_argument("--json", action="store_true", help="print the cards as JSON to stdout")
    _registry_flag(listing)
    listing.set_defaults(handler=run_ls)
    return parser


def _registry_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        default=None,
        metavar="DIR",
        help="registry folder (default: $DIFFLAB_CACHE/feature-models or "
        "~/.cache/difflab/feature-models)",
    )


def run_train(args: argparse.Namespace) -> int:
    config = dataclass_from_args(ClassifierConfig, args)
    from difflab.training.fit_classifier import train_feature_model

    start = time.perf_counter()
    card = train_feature_model(
        config, registry=args.registry, out=args.out, progress=not args.no_progress
    )
    summary = {k: card[k] for k in ("id", "test_accuracy", "train_seconds", "weights_sha256")}
    summary.update(feature_dim=card["feature_dim"], real_floor=card["real_floor"])
    summary["command_seconds"] = round(time.perf_counter() - start, 1)
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0


def run_ls(args: argparse.Namespace) -> int:
    from difflab.metrics.feature_models import list_feature_models

    entries = list_feature_models(args.registry)
    if args.json:
        rows = [dict(e.card, id=e.id, folder=str(e.folder), builtin=e.builtin) for e in entries]
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    print(format_table(entries), file=sys.stderr)
    return 0


def format_table(entries) -> str:
    header = ("id", "dataset", "shape", "classes", "accuracy", "dim", "weights", "train s")
    rows = [header]
    for e in entries:
        card = e.card
        rows.append((
            e.id,
            e.identity["name"],
            "x".join(map(str, e.image_shape)),
            str(len(card["classes"])),
            f"{card['test_accuracy']:.4f}",
            str(card["feature_dim"]),
            card["weights_sha256"][:12],
            f"{card.get('train_seconds', 0):.0f}",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
