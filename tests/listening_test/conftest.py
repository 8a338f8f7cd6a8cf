"""Fixtures for the listening-test app (helpers in ``lt_support``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .lt_support import LiveServer, make_stimuli


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """The stimuli are small: one intra-op thread."""


@pytest.fixture(scope="module")
def tiny_stimuli(tmp_path_factory) -> Path:
    return make_stimuli(tmp_path_factory.mktemp("stimuli"))


@pytest.fixture(scope="module")
def one_target_stimuli(tmp_path_factory) -> Path:
    """2 items x 4 conditions x 1 target: 8 rating trials."""
    return make_stimuli(tmp_path_factory.mktemp("stimuli-1t"), targets=("warm",))


@pytest.fixture()
def live_server(tmp_path, tiny_stimuli):
    """A factory of started servers on a fresh database; all are stopped at the end."""
    servers: list[LiveServer] = []

    def start(*extra_args, db: Path | None = None, stimuli: Path | None = None) -> LiveServer:
        server = LiveServer(stimuli or tiny_stimuli, db or tmp_path / "responses.sqlite", tmp_path, extra_args)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
