"""Data-parallel training as torchrun runs it: two CPU processes, gloo backend."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from mastering.training import TensorPairs, Trainer, train_config

TINY = dict(latent_dim=8, encoder={"stem_channels": 8, "block_channels": [8, 8, 8, 8]}, decoder_hidden=8,
            dynamics=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, folder: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                       "RANK": str(rank), "LOCAL_RANK": str(rank), "MASTERING_RUNS_DIR": folder})
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 2, 8000, generator=g) * 0.1
    data = TensorPairs(x, x.flip(-1))
    config = train_config("1a", "smoke", sample_rate=16000, segment_seconds=0.5, batch_size=2, epochs=1,
                          steps_per_epoch=1, lr=0.01, progress=False, device="cpu", model=TINY)
    trainer = Trainer(config, data, data, run_dir=os.path.join(folder, "ddp"))
    assert trainer.distributed and trainer.rank == rank
    trainer.fit()
    torch.save(trainer.module.state_dict(), os.path.join(folder, f"rank{rank}.pt"))
    trainer.close()


@pytest.mark.timeout(600)  # a hung collective must fail the test, not stall the whole run
def test_two_process_ddp_keeps_replicas_in_sync(tmp_path):
    # spawn, not fork: a child forked from a test process whose thread pools are running can deadlock
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    a = torch.load(tmp_path / "rank0.pt")
    b = torch.load(tmp_path / "rank1.pt")
    start = Trainer(train_config("1a", "smoke", sample_rate=16000, segment_seconds=0.5, progress=False, model=TINY),
                    TensorPairs(torch.zeros(1, 2, 8000), torch.zeros(1, 2, 8000)),
                    TensorPairs(torch.zeros(1, 2, 8000), torch.zeros(1, 2, 8000)), run_dir=tmp_path / "x").module
    moved = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], start.state_dict()[k])]
    assert moved  # one optimizer step happened
    for key in a:  # gradients were averaged across processes: replicas stay identical
        assert torch.equal(a[key], b[key]), key
    state = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and state["step"] == 1
    assert (tmp_path / "mastering" / "latest.json").is_file()
