"""Damaged files of a run folder x the commands that read them: `train --resume`, `sample`,
`eval`. A damaged newest checkpoint is skipped with one warning and the run resumes exactly
from the one before; a damaged model or config is refused in one line that names it."""

from __future__ import annotations

import pytest

from . import damage
from .cases import NEWEST, RESUME_WRITES, RUN, Case, run_case
from .harness import Expect

SKIPPED = r"skipping a damaged checkpoint"


def fallback(name: str) -> Expect:
    """Resume from the older checkpoint after one warning naming the damaged file."""
    return Expect(0, name, SKIPPED, RESUME_WRITES)


def refused(name: str, advice: str) -> Expect:
    return Expect(2, name, advice)


NEWEST_TENSORS, NEWEST_JSON, NEWEST_MARKER = (f"{NEWEST}{s}" for s in (".safetensors", ".json", ".complete"))  # fmt: skip
NOT_OURS = r"move it out of checkpoints/"  # a checkpoint whose hashes agree but tensors do not fit
RE_EXPORT = r"[Rr]e-export"

CHECKPOINT_CASES = [
    Case(NEWEST_TENSORS, damage.truncate, "train --resume", fallback("000004-step8.safetensors")),
    Case(NEWEST_TENSORS, damage.bit_flip, "train --resume", fallback("000004-step8.safetensors")),
    Case(NEWEST_TENSORS, damage.link_out, "train --resume", fallback("000004-step8.safetensors")),
    Case(NEWEST_JSON, damage.cut_json, "train --resume", fallback("000004-step8.json")),
    Case(NEWEST_JSON, damage.delete_key("tensors"), "train --resume", fallback("000004-step8.json")),
    Case(NEWEST_MARKER, damage.cut_json, "train --resume", fallback("000004-step8.complete")),
    Case(NEWEST_MARKER, damage.delete_key("json_sha256"), "train --resume", fallback("000004-step8.complete")),
    Case(NEWEST_TENSORS, damage.wrong_dtype, "train --resume", refused("000004-step8.safetensors", NOT_OURS)),
    Case(NEWEST_TENSORS, damage.wrong_shape, "train --resume", refused("000004-step8.safetensors", NOT_OURS)),
]  # fmt: skip

MODEL_CASES = [
    Case("model.safetensors", damage.truncate, "sample", refused("model.safetensors", RE_EXPORT)),
    Case("model.safetensors", damage.bit_flip, "sample", refused("model.safetensors", RE_EXPORT)),
    Case("model.safetensors", damage.bit_flip, "eval", refused("model.safetensors", RE_EXPORT)),
    Case("model.safetensors", damage.wrong_dtype, "sample", refused("model.safetensors", RE_EXPORT)),
    Case("model.safetensors", damage.wrong_shape, "sample", refused("model.safetensors", RE_EXPORT)),
    Case("model.safetensors", damage.link_out, "sample", refused("model.safetensors", r"copy the file")),
    Case("model.json", damage.cut_json, "sample", refused("model.json", r"restore it|[Rr]e-export")),
    Case("model.json", damage.cut_json, "eval", refused("model.json", r"restore it|[Rr]e-export")),
    Case("model.json", damage.delete_key("unet"), "sample", refused("model.json", RE_EXPORT)),
    Case("model.json", damage.link_out, "sample", refused("model.json", r"copy the file")),
]  # fmt: skip

CONFIG_CASES = [
    Case("config.json", damage.cut_json, "train --resume", refused("config.json", r"restore the file")),
    Case("config.json", damage.delete_key("train"), "train --resume", refused("config.json", r"restore the file")),
    Case("config.json", damage.link_out, "train --resume", refused("config.json", r"copy the file")),
]  # fmt: skip


@pytest.mark.parametrize("case", CHECKPOINT_CASES + CONFIG_CASES, ids=lambda c: c.id)
def test_resume_of_an_interrupted_run(case, interrupted_run, trained_run, tmp_path):
    problems = run_case(case, interrupted_run, tmp_path)
    assert not problems, "\n".join(problems)
    if case.expect.code == 0:  # the fallback is exact: the run ends on the same weights
        model = "model.safetensors"
        assert (tmp_path / RUN / model).read_bytes() == (trained_run / model).read_bytes()


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_model_files(case, trained_run, tmp_path):
    problems = run_case(case, trained_run, tmp_path)
    assert not problems, "\n".join(problems)
