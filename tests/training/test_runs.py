"""Run folders are written atomically and never overwritten by accident: a bad or occupied
`--out` is refused before training, the first Ctrl-C saves the best epoch so far as a finished
run, a second saves nothing, and a folder without its completion marker is never a run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from training.cli import main

SMALL = "synthetic:users=60,items=200,interactions=1500,seed=2"
ONE_BATCH = "synthetic:users=200,items=500,interactions=20000,seed=2"  # under 20000 to train
QUICK = ["--data", SMALL, "--dim", "4", "--epochs", "1", "--quiet"]


def fit(capsys, out: Path, *extra: str) -> tuple[int, str]:
    status = main(["fit", "--out", str(out), *QUICK, *extra])
    return status, capsys.readouterr().err.strip()


def test_an_existing_run_is_refused_unless_overwrite(capsys, tmp_path):
    out = tmp_path / "run"
    assert fit(capsys, out) == (0, "")
    stamp = (out / "metrics.json").stat().st_mtime_ns
    status, err = fit(capsys, out)
    assert status == 2 and "holds a finished run; pass --overwrite" in err
    assert (out / "metrics.json").stat().st_mtime_ns == stamp
    assert fit(capsys, out, "--overwrite", "--seed", "3") == (0, "")
    assert json.loads((out / "metrics.json").read_text())["config"]["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging left behind


def test_overwrite_never_replaces_a_folder_that_is_not_a_run(capsys, tmp_path):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "cat.jpg").write_bytes(b"\xff\xd8")
    status, err = fit(capsys, mine, "--overwrite")
    assert status == 2 and "not a run folder" in err
    assert (mine / "cat.jpg").read_bytes() == b"\xff\xd8"


@pytest.mark.parametrize("out,needle", [
    ("a-file", "is a file"),
    ("a-file/run", "cannot write there"),  # a parent that is no folder (root ignores modes)
])
def test_a_bad_out_is_refused_before_any_training(capsys, tmp_path, out, needle):
    (tmp_path / "a-file").write_text("not a folder")
    status = main(["fit", "--out", str(tmp_path / out), *QUICK, "--epochs", "500"])
    err = capsys.readouterr().err
    assert status == 2 and needle in err and str(tmp_path / out) in err


def test_a_folder_without_its_completion_marker_is_not_a_run(capsys, tmp_path):
    out = tmp_path / "run"
    assert fit(capsys, out) == (0, "")
    (out / "COMPLETE").unlink()  # as a copy cut short, or a save killed halfway, leaves it
    assert main(["evaluate", "--run", str(out)]) == 2
    assert "not a finished run folder" in capsys.readouterr().err


EPOCH_LINE = re.compile(r"epoch +\d+  loss=")
STOPPING = re.compile(r"interrupt: stopping after this batch")  # the first Ctrl-C's line


def _start_long_fit(out: Path) -> subprocess.Popen:
    """A fit that would run for minutes, started so that SIGINT reaches only it. Each epoch
    is one batch of a few tenths of a second, so a Ctrl-C sent as soon as the first one has
    been taken comes while the batch that the first lets finish still runs."""
    args = [sys.executable, "-m", "training", "fit", "--out", str(out), "--data", ONE_BATCH,
            "--dim", "256", "--batch-size", "20000", "--epochs", "100000", "--patience",
            "100000", "--task", "rating"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)


def _wait_for_lines(proc: subprocess.Popen, pattern: re.Pattern, count: int = 1,
                    within_s: float = 120) -> None:
    """Until `count` lines of the fit's stderr match (the epoch lines are among the progress
    bar's updates), read in a thread so that the wait has a deadline; the lines read are
    gone from what communicate() returns later."""
    found = threading.Event()

    def read() -> None:
        seen = 0
        for line in proc.stderr:
            seen += bool(pattern.search(line))
            if seen >= count:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(within_s)
    if not found.is_set():
        proc.kill()
        raise AssertionError(f"no {count} lines matching {pattern.pattern!r} within "
                             f"{within_s} s: {proc.communicate(timeout=30)[0]}")


def test_first_ctrl_c_saves_the_best_epoch_so_far_as_a_finished_run(tmp_path):
    out = tmp_path / "run"
    proc = _start_long_fit(out)
    _wait_for_lines(proc, EPOCH_LINE, 2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stopping after this batch" in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["epochs"] >= 2
    assert 1 <= metrics["best_epoch"] <= metrics["epochs"]
    assert "rmse" in metrics["test"] and (out / "COMPLETE").is_file()
    assert len(json.loads((out / "history.json").read_text())) == metrics["epochs"]
    assert main(["evaluate", "--run", str(out)]) == 0


def test_second_ctrl_c_aborts_and_saves_nothing(tmp_path):
    out = tmp_path / "run"
    proc = _start_long_fit(out)
    _wait_for_lines(proc, EPOCH_LINE)
    proc.send_signal(signal.SIGINT)
    _wait_for_lines(proc, STOPPING)  # the first taken: the fit finishes its batch
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []  # neither the run nor its staging folder
