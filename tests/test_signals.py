"""A termination whose exception was swallowed (inside a ``__del__``) still stops the run."""

import gc
import signal

import pytest
import soundfile as sf

from mastering import cli, signals


class _Finalised:
    def __del__(self):
        signals.raise_terminated(signal.SIGTERM, None)  # as if the signal fired during finalisation


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one, on purpose
def test_a_swallowed_termination_is_raised_at_the_next_check(monkeypatch):
    monkeypatch.setattr(signals, "_received", None)
    signals.check_terminated()  # nothing pending: no error
    obj = _Finalised()
    del obj  # Python prints "Exception ignored" and goes on
    gc.collect()
    with pytest.raises(signals.Terminated) as info:
        signals.check_terminated()
    assert info.value.signum == signal.SIGTERM
    signals.clear_terminated()
    signals.check_terminated()


def test_master_stops_before_writing_when_a_termination_was_swallowed(tmp_path, monkeypatch, capsys):
    from tests.test_master import _music

    src = tmp_path / "in.wav"
    sf.write(str(src), _music(3.0, 44100).T, 44100, subtype="PCM_16")
    digest = src.read_bytes()
    monkeypatch.setattr(signals, "_received", signal.SIGHUP)  # the handler ran, its exception was lost
    rc = cli.main(["master", str(src), str(tmp_path / "out.wav"), "-q"])
    err = capsys.readouterr().err
    assert rc == 128 + signal.SIGHUP, err
    assert err.strip().splitlines()[-1] == "terminated (SIGHUP)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]
    assert src.read_bytes() == digest
    assert signals._received is None  # the next command starts clean
