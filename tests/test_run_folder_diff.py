"""code.diff records the code that ran: changes to tracked files and untracked, not ignored ones."""

import shutil
import subprocess

import pytest

from difflab.tracking.run_folder import UNTRACKED_MAX_BYTES, describe_environment

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def git(*args, cwd):
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    return subprocess.run([*cmd, *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture
def dirty_repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    git("init", "-q", cwd=repo)
    (repo / ".gitignore").write_text("ignored.txt\n")
    (repo / "pkg" / "a.py").write_text("x = 1\n")
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    (repo / "pkg" / "a.py").write_text("x = 2\n")  # tracked, modified
    (repo / "pkg" / "new.py").write_text("def f():\n    return 'new'\n")  # untracked
    (repo / "notes").mkdir()
    (repo / "notes" / "idea.md").write_text("# an idea\n")  # in an untracked folder
    (repo / "ignored.txt").write_text("secret-ignored-content\n")
    (repo / "big.txt").write_text("y" * (UNTRACKED_MAX_BYTES + 1))
    (repo / "blob.bin").write_bytes(bytes(range(256)) * 4)
    return repo


def test_code_diff_includes_untracked_files_and_applies_to_the_commit(dirty_repo, tmp_path):
    env, diff = describe_environment(dirty_repo / "pkg")  # from a sub-folder, as the package does
    assert env["git_dirty"] and env["git_commit"]
    assert "secret-ignored-content" not in diff and "ignored.txt" not in diff
    assert "big.txt not included" in diff and "y" * 100 not in diff
    assert "blob.bin not included" in diff
    # The independent check: the commit plus code.diff is the working tree that ran.
    clone = tmp_path / "clone"
    git("clone", "-q", str(dirty_repo), str(clone), cwd=tmp_path)
    (tmp_path / "code.diff").write_text(diff)
    git("apply", str(tmp_path / "code.diff"), cwd=clone)
    for name in ("pkg/a.py", "pkg/new.py", "notes/idea.md"):
        assert (clone / name).read_text() == (dirty_repo / name).read_text(), name
    assert not (clone / "ignored.txt").exists()


def test_a_clean_checkout_has_an_empty_diff(tmp_path):
    repo = tmp_path / "clean"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    (repo / "a.py").write_text("x = 1\n")
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    env, diff = describe_environment(repo)
    assert diff == "" and env["git_dirty"] is False


def test_many_untracked_files_are_counted_not_diffed_one_by_one(dirty_repo, monkeypatch):
    from difflab.tracking import run_folder

    monkeypatch.setattr(run_folder, "UNTRACKED_MAX_FILES", 3)
    images = dirty_repo / "images"
    images.mkdir()
    for k in range(20):
        (images / f"{k:02d}.txt").write_text(f"{k}\n")
    _, diff = describe_environment(dirty_repo)
    # the fixture's 4 untracked files (big.txt, blob.bin, notes/idea.md, pkg/new.py) + 20
    untracked = 4 + 20
    assert f"# {untracked - 3} more untracked files not included (limit 3)" in diff
    assert diff.count("new file mode") + diff.count("not included:") == 3
