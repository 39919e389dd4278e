"""`retrain --every`: the duration grammar, and a loop that outlives a failed cycle."""

from __future__ import annotations

import pytest

from training.errors import ConfigError
from training.retrain.schedule import parse_every, run_every


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("6h", 21600),
                                           ("1d", 86400), (" 2d ", 172800)])
def test_durations(text, seconds):
    assert parse_every(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "0h", "1.5h", "1w", "-1d", "h"])
def test_bad_durations_name_the_grammar(text):
    with pytest.raises(ConfigError, match="s, m, h or d"):
        parse_every(text)


def test_a_failed_cycle_is_logged_and_the_loop_goes_on(capsys):
    calls, sleeps = [], []

    def cycle():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("redis away")
        return {"verdict": "nothing new"}

    assert run_every(60, 3, cycle, sleep=sleeps.append) == 1
    out, err = capsys.readouterr()
    assert len(calls) == 3 and len(sleeps) == 2 and all(0 < s <= 60 for s in sleeps)
    assert [line.startswith('{"round": ') for line in out.splitlines()] == [True, True]
    assert "cycle 2 failed: RuntimeError: redis away" in err
