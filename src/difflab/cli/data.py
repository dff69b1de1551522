"""`difflab data`: what a data set holds and where it came from; download it into the cache."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help="inspect, verify and download data sets",
        description="Inspect, verify and download data sets (fashion_mnist, mnist, cifar10, or "
        "a folder of images).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="shapes, counts per class, source and checksums")
    info.add_argument("dataset", help="fashion_mnist, mnist, cifar10 or a folder of images")
    info.add_argument("--root", help="folder holding the files (else DIFFLAB_DATA, caches)")
    info.add_argument(
        "--split",
        choices=("train", "test"),
        action="append",
        help="only this split (repeatable; default: both, when present)",
    )
    info.add_argument("--download", action="store_true", help="download what is missing")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    fetch = actions.add_parser("fetch", help="download a data set into the cache and verify it")
    fetch.add_argument("dataset", help="fashion_mnist, mnist or cifar10")
    fetch.add_argument(
        "--url", help="base URL of a mirror (default: DIFFLAB_DOWNLOAD_URL, else the publisher's)"
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    return run_fetch(args) if args.action == "fetch" else run_info(args)


def run_info(args: argparse.Namespace) -> int:
    from difflab.data import DatasetError, load_images

    splits = args.split or ["train", "test"]
    reports = []
    for split in splits:
        try:
            ds = load_images(args.dataset, split, args.root, download=args.download)
        except DatasetError:
            if args.split or split == "train":
                raise  # a split asked for, or the train split, must be there
            print(f"({args.dataset} {split}: not found, skipped)", file=sys.stderr)
            continue  # a folder without a test/ sub-folder, or a test split not downloaded
        reports.append(describe(ds))
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        sys.stdout.write("".join(format_text(r) for r in reports))
    return 0


def describe(ds) -> dict:
    """A JSON-able summary of a loaded ImageSet."""
    return {
        "name": ds.name,
        "split": ds.split,
        "source": ds.source,
        "images": {
            "shape": list(ds.images.shape),
            "dtype": str(ds.images.dtype),
            "min": int(ds.images.min()),
            "max": int(ds.images.max()),
        },
        "labels": {"shape": list(ds.labels.shape), "dtype": str(ds.labels.dtype)},
        "class_counts": ds.class_counts(),
        "files": [{"path": c.path, "md5": c.md5, "matched": c.matched} for c in ds.checks],
    }


def format_text(r: dict) -> str:
    shape = "x".join(map(str, r["images"]["shape"]))
    lines = [
        f"{r['name']} {r['split']}: {shape} {r['images']['dtype']} "
        f"(values {r['images']['min']}..{r['images']['max']}) from {r['source']}"
    ]
    width = max(len(c) for c in r["class_counts"])
    lines += [f"  {c:<{width}}  {n:>7,}" for c, n in r["class_counts"].items()]
    lines += [f"  ok {f['md5']} ({f['matched']} md5)  {f['path']}" for f in r["files"]]
    if not r["files"]:
        lines.append("  (image folder: no published checksums; sizes and modes checked)")
    return "\n".join(lines) + "\n"


def run_fetch(args: argparse.Namespace) -> int:
    from difflab.data import fetch

    for split in ("train", "test"):
        ds = fetch(args.dataset, split, url=args.url)
        print(f"{ds.name} {split}: {len(ds):,} images verified in {ds.source}")
    return 0
