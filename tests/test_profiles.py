"""The profile registry: every profile has the same keys and sections, unknown names fail clearly,
and no other module keeps a table of its own."""

import argparse
import ast
import re
from pathlib import Path

import pytest

from mastering.profiles import OVERRIDE_PATHS, PROFILES, SECTIONS, get_profile, key_value

ROOT = Path(__file__).resolve().parents[1]


def _shape(tree: dict, prefix: tuple = ()) -> dict[tuple, bool]:
    """Every key path of ``tree`` and whether its value is a nested dict (override dicts are leaves)."""
    out = {}
    for key, value in tree.items():
        path = prefix + (key,)
        out[path] = isinstance(value, dict) and path not in OVERRIDE_PATHS
        if out[path]:
            out.update(_shape(value, path))
    return out


def _get(tree: dict, path: tuple):
    for key in path:
        tree = tree[key]
    return tree


def test_every_profile_has_the_same_keys_recursively():
    shapes = {name: _shape(profile) for name, profile in PROFILES.items()}
    first = next(iter(shapes.values()))
    for name, shape in shapes.items():
        assert shape == first, (name, set(shape) ^ set(first))


def test_every_consumer_section_is_present():
    for name, profile in PROFILES.items():
        for section in SECTIONS:
            assert isinstance(profile.get(section), dict), (name, section)
        for path in OVERRIDE_PATHS:
            value = _get(profile, path)
            assert value is None or isinstance(value, dict), (name, path)
        assert isinstance(profile["note"], str)
    assert next(iter(PROFILES)) == "smoke" and list(PROFILES)[-1] == "full"  # smallest to largest


def test_unknown_profile_names_the_available_ones():
    from mastering.training.config import train_config
    from mastering.training.thesis import thesis_config

    for make in (get_profile, lambda p: train_config("1b", p), thesis_config):
        with pytest.raises(ValueError, match=re.escape(f"unknown profile 'huge'; choose one of {sorted(PROFILES)}")):
            make("huge")
    with pytest.raises(ValueError, match="has no parameter"):
        get_profile("smoke", no_such_size=1)


def test_get_profile_returns_a_copy():
    params = get_profile("smoke", seed=3)
    params["train"]["epochs"] = -1
    assert params["seed"] == 3 and params["profile"] == "smoke"
    assert PROFILES["smoke"]["train"]["epochs"] != -1 and PROFILES["smoke"]["seed"] == 0


def test_key_value_reads_json_values_and_keeps_other_text():
    assert key_value("lr=5e-4") == ("lr", 5e-4)
    assert key_value('data={"train_items": 16}') == ("data", {"train_items": 16})
    assert key_value("device=cuda:0") == ("device", "cuda:0")
    assert key_value("note=a=b") == ("note", "a=b")
    with pytest.raises(argparse.ArgumentTypeError, match="expected key=value"):
        key_value("lr")


def test_profiles_module_is_the_bottom_layer():
    tree = ast.parse((ROOT / "mastering" / "profiles.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module.split(".")[0] not in ("mastering", "listening_test"), node.module
        elif isinstance(node, ast.Import):
            assert all(a.name.split(".")[0] not in ("mastering", "listening_test") for a in node.names)


def test_no_other_module_keeps_a_profile_table():
    """A dict literal keyed by two or more profile names outside profiles.py is a second registry."""
    offenders = []
    for package in ("mastering", "listening_test", "benchmarks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "profiles.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Dict):
                    keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                    if len(keys & set(PROFILES)) >= 2:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"per-profile values belong in mastering/profiles.py: {offenders}"
