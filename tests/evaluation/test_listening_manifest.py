"""Manifest validation (mastering/evaluation/listening_manifest.py): what the app refuses to serve."""

from __future__ import annotations

import pytest

from mastering.evaluation.listening_manifest import load_manifest, write_manifest

from ..listening_test.lt_support import make_stimuli

FIELDS = ["item", "condition", "target", "path", "placeholder"]


def one_row(tmp_path, **override):
    (tmp_path / "original").mkdir(exist_ok=True)
    (tmp_path / "original" / "a.wav").write_bytes(b"RIFF")
    row = {"item": "a", "condition": "original", "target": "warm", "path": "original/a.wav", "placeholder": "0"}
    row.update(override)
    write_manifest(tmp_path, [row], FIELDS)
    return tmp_path


def test_round_trip(tmp_path):
    root = make_stimuli(tmp_path, items=("x", "y"), targets=("warm", "bright"))
    m = load_manifest(root)
    assert len(m.rows) == 2 * 4 * 2
    assert m.conditions == ("original", "adaptive_semantic_eq", "floweq_style", "static_eq")
    assert m.targets == ("warm", "bright") and m.items == ("x", "y")
    assert all(r.placeholder for r in m.rows)
    assert m.resolve("original/x.wav") == (root / "original" / "x.wav").resolve()
    assert len(m.sha256) == 64


def test_hash_follows_content(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = load_manifest(one_row(tmp_path / "a", placeholder="0"))
    b = load_manifest(one_row(tmp_path / "b", placeholder="1"))
    assert a.sha256 != b.sha256 and a.rows[0].placeholder is False and b.rows[0].placeholder is True


@pytest.mark.parametrize(
    "override, message",
    [
        ({"path": "../secret.wav"}, "outside the stimuli folder"),
        ({"path": "/etc/passwd.wav"}, "must be relative"),
        ({"path": "original\\a.wav"}, "must be relative"),
        ({"path": "original/a.mp3"}, "must be a .wav"),
        ({"path": "original/missing.wav"}, "does not exist"),
        ({"target": "Warm"}, "lower-case adjective"),
        ({"target": "<script>"}, "lower-case adjective"),
        ({"item": ""}, "item"),
        ({"condition": "a/b"}, "condition"),
        ({"placeholder": "maybe"}, "placeholder"),
    ],
)
def test_invalid_rows_are_refused(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        load_manifest(one_row(tmp_path, **override))


def test_missing_manifest_column_duplicate_empty(tmp_path):
    with pytest.raises(ValueError, match="no manifest"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("item,condition,path\na,original,original/a.wav\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['target'\]"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("item,condition,target,path\n")
    with pytest.raises(ValueError, match="lists no stimuli"):
        load_manifest(tmp_path)
    root = one_row(tmp_path)
    text = (root / "manifest.csv").read_text()
    (root / "manifest.csv").write_text(text + text.splitlines()[1] + "\n")
    with pytest.raises(ValueError, match="listed twice"):
        load_manifest(root)


def test_write_manifest_requires_columns(tmp_path):
    with pytest.raises(ValueError, match="lack"):
        write_manifest(tmp_path, [], ["item", "path"])
