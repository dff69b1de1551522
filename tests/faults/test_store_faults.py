"""The runs folder's shared files x `difflab runs ls|show|reindex`, `difflab board` (a real
server on 127.0.0.1) and `train --resume`: a damaged index is refused with the command that
heals it, or healed by `reindex` (the damaged file moved aside, never deleted); a damaged run
folder file is skipped with one warning naming it; nothing is followed out of its folder."""

from __future__ import annotations

import pytest

from . import damage
from .cases import INDEX_WRITES, RESUME_WRITES, RUN, Case, run_case
from .harness import Expect

INDEX = "../runs.sqlite"  # relative to the run folder: the runs folder's index
REINDEX = r"difflab runs reindex --runs-dir"
SKIPPED_RUN = r"skipping run folder"
NOT_FOLLOWED = r"not followed"
KEPT = r"skipped|kept"  # damaged lines of a .jsonl: skipped when read, kept in the file
PAGES = (("/", 200), ("/run/1", 200))
# The damaged index stays as it is: the run goes on without it (one warning saying the fix).
RESUME_KEEPS_INDEX = tuple(w for w in RESUME_WRITES if not w.startswith("runs/runs.sqlite"))

INDEX_CASES = [
    Case(INDEX, damage.garbage_db, "runs ls", Expect(2, "runs.sqlite", REINDEX)),
    Case(INDEX, damage.garbage_db, "runs show", Expect(2, "runs.sqlite", REINDEX)),
    Case(INDEX, damage.garbage_db, "board", Expect(2, "runs.sqlite", REINDEX)),
    Case(INDEX, damage.truncate, "runs ls", Expect(2, "runs.sqlite", REINDEX), prepare=("runs reindex",)),
    Case(INDEX, damage.garbage_db, "runs reindex",
         Expect(0, "runs.sqlite", r"moved it to .*runs\.sqlite\.damaged-", INDEX_WRITES + ("runs/runs.sqlite.damaged-*",))),
]  # fmt: skip

FOLDER_CASES = [
    Case("config.json", damage.cut_json, "runs ls", Expect(0, "config.json", SKIPPED_RUN, INDEX_WRITES)),
    Case("config.json", damage.cut_json, "runs reindex", Expect(0, "config.json", SKIPPED_RUN, INDEX_WRITES)),
    Case("config.json", damage.link_out, "runs ls", Expect(0, "config.json", NOT_FOLLOWED, INDEX_WRITES)),
    Case("config.json", damage.cut_json, "board", Expect(0, "config.json", SKIPPED_RUN, INDEX_WRITES),
         gets=(("/", 200), ("/run/1", 404))),
    Case("metrics.jsonl", damage.cut_last_row, "runs reindex", Expect(0, "metrics.jsonl", KEPT, INDEX_WRITES)),
    Case("metrics.jsonl", damage.bit_flip, "runs ls", Expect(0, "metrics.jsonl", KEPT, INDEX_WRITES)),
    Case("metrics.jsonl", damage.link_out, "runs show", Expect(0, "metrics.jsonl", NOT_FOLLOWED, INDEX_WRITES)),
    Case("metrics.jsonl", damage.bit_flip, "board", Expect(0, "metrics.jsonl", KEPT, INDEX_WRITES), gets=PAGES),
    Case("code.diff", damage.link_out, "board", Expect(0, "code.diff", NOT_FOLLOWED, INDEX_WRITES), gets=PAGES),
]  # fmt: skip

RESUME_CASES = [
    Case(INDEX, damage.garbage_db, "train --resume", Expect(0, "runs.sqlite", REINDEX, RESUME_KEEPS_INDEX)),
    Case("metrics.jsonl", damage.cut_last_row, "train --resume", Expect(0, "metrics.jsonl", KEPT, RESUME_WRITES)),
    Case("metrics.jsonl", damage.bit_flip, "train --resume", Expect(0, "metrics.jsonl", KEPT, RESUME_WRITES)),
]  # fmt: skip


@pytest.mark.parametrize("case", INDEX_CASES + FOLDER_CASES, ids=lambda c: c.id)
def test_runs_folder(case, trained_run, tmp_path):
    problems = run_case(case, trained_run, tmp_path)
    assert not problems, "\n".join(problems)
    if case.command == "runs reindex" and case.target == INDEX:  # moved aside, not deleted
        [aside] = (tmp_path / "runs").glob("runs.sqlite.damaged-*")
        assert aside.read_bytes() == damage.GARBAGE_DB


@pytest.mark.parametrize("case", RESUME_CASES, ids=lambda c: c.id)
def test_resume_beside_damaged_tracking_files(case, interrupted_run, trained_run, tmp_path):
    before = (interrupted_run / "metrics.jsonl").read_bytes()
    problems = run_case(case, interrupted_run, tmp_path)
    assert not problems, "\n".join(problems)
    model = "model.safetensors"
    assert (tmp_path / RUN / model).read_bytes() == (trained_run / model).read_bytes()
    if case.target == "metrics.jsonl":  # the damaged lines are kept, byte for byte
        damaged = tmp_path / "metrics-as-damaged.jsonl"
        damaged.write_bytes(before)
        case.damage(damaged)
        assert (tmp_path / RUN / "metrics.jsonl").read_bytes().startswith(damaged.read_bytes())
