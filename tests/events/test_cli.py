"""`python -m training events export`: the summary on stdout, progress on stderr, and every
user error one line and exit status 2."""

from __future__ import annotations

import json

import pytest

from events.file_log import FileLog
from events.record import Stamp, interactions_line
from training import cli


def test_export_prints_its_summary_and_writes_the_dataset(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "PROGRESS_EVERY", 2)
    log = FileLog(tmp_path / "log", segment_bytes=1)
    for k in range(3):
        log.append(interactions_line("u", ["a", "b"], Stamp(float(k), "v1")))
    assert cli.main(["events", "export", "--from", str(tmp_path / "log"),
                     "--out", str(tmp_path / "out"), "--retain", "30d"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("6 events of 0 profiled users") and str(tmp_path / "out") in out
    assert "read 2 events" in err and "read 6 events" in err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest == {"format": 1, "events": 6, "first_at": 0.0, "last_at": 2.0,
                        "model_versions": ["v1"], "users": 0, "items": 0}


@pytest.mark.parametrize("args, message", [
    (["--from", "{tmp}/absent"], "neither a redis:// URL nor a directory"),
    (["--from", "redis://127.0.0.1:1/0"], "error: redis: ConnectionError"),
    (["--from", "{tmp}", "--retain", "3q"], "--retain: '3q' is neither an age"),
    (["--from", "{tmp}"], "the following arguments are required: --out"),
])
def test_errors_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = [] if "required" in message else ["--out", str(tmp_path / "out")]
    assert cli.main(["events", "export", *args, *out]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_password_comes_from_its_file_never_argv(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GMLREC_REDIS_PASSWORD_FILE", str(tmp_path / "missing"))
    assert cli.main(["events", "export", "--from", "redis://127.0.0.1:1/0",
                     "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "GMLREC_REDIS_PASSWORD_FILE: cannot read a password" in err
