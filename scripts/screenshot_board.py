"""Screenshot a page of `difflab board` over a runs folder (Debian's chromium via Playwright).

    python scripts/screenshot_board.py RUNS_DIR /run/00001-... docs/board.png

Serves RUNS_DIR on 127.0.0.1 (a free port) for the time it takes, then saves a full-page PNG.
Used for the README's picture of the board.
"""

from __future__ import annotations

import argparse
import shutil
import threading

from difflab.tracking.board.server import make_server

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir")
    parser.add_argument("page", help="path of the page, e.g. / or /run/00001-fashion_mnist-...")
    parser.add_argument("out", help="PNG file to write")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        parser.error("chromium is not installed (apt-get install chromium)")
    server = make_server(args.runs_dir, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 800})
            page.goto(f"http://{host}:{port}{args.page}", wait_until="load")
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
