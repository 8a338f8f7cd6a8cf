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


_CTYPES_CALLBACK = """
import ctypes, os, signal, sys
from mastering import signals

callback = ctypes.CFUNCTYPE(None)
hook = sys.unraisablehook

def body():  # Python called from foreign code, as numba's compiler calls llvmlite's object cache
    os.kill(os.getpid(), signal.SIGTERM)
    sum(range(1000))  # the handler runs here, inside the callback

with signals.termination_handlers():
    callback(body)()  # ctypes swallows the handler's exception
    print("went on", flush=True)
    try:
        signals.check_terminated()
    except signals.Terminated as exc:
        print("raised", exc, flush=True)
    callback(lambda: 1 / 0)()  # any other swallowed error is still reported
print("restored", sys.unraisablehook is hook and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
"""


def test_a_termination_inside_a_ctypes_callback_stops_the_run_without_a_traceback(tmp_path):
    """SIGTERM while foreign code calls back into Python (numba compiling on a cold cache): nothing on
    stderr for it, raised again at the next check; other swallowed errors still show; all restored."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-c", _CTYPES_CALLBACK], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["went on", "raised SIGTERM", "restored True"]
    assert "Terminated" not in done.stderr and "SIGTERM" not in done.stderr, done.stderr
    assert "ZeroDivisionError" in done.stderr
