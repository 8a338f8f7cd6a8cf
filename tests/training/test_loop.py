"""The shared fit loop: best weights, early stopping, schedule, and exact resumption."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from mastering.training.loop import fit


def _problem(seed: int = 0):
    """A noisy linear regression with its own generator (the caller-owned random state)."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(seed)
    w = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    xv = torch.randn(64, 4, generator=torch.Generator().manual_seed(99))
    yv = xv @ w.T

    def train_epoch(epoch: int) -> dict[str, float]:
        x = torch.randn(32, 4, generator=gen)
        y = x @ w.T + 0.1 * torch.randn(32, 1)  # global RNG too: the loop saves it
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"train_loss": float(loss.detach())}

    def validate() -> dict[str, float]:
        with torch.no_grad():
            return {"valid_loss": float(((model(xv) - yv) ** 2).mean())}

    return model, opt, gen, train_epoch, validate


def test_best_weights_are_restored_and_training_stops_early():
    model, opt, _, train_epoch, _ = _problem()
    values = iter([3.0, 1.0, 2.0, 2.5, 0.5, 9.0])
    snapshots = []

    def validate():
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"valid_loss": next(values)}

    result = fit(model, opt, train_epoch, 6, validate=validate, monitor="valid_loss", patience=2, progress=False)
    assert result.epochs_run == 4 and result.best_epoch == 1 and result.best_value == 1.0  # stopped after 2 worse
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4] and {"lr", "seconds"} <= set(result.history[0])


def test_plateau_schedule_steps_on_the_monitor():
    model, opt, _, train_epoch, _ = _problem()
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    values = iter([1.0, 2.0, 3.0])
    result = fit(model, opt, train_epoch, 3, validate=lambda: {"v": next(values)}, monitor="v", scheduler=sched,
                 progress=False)
    assert [r["lr"] for r in result.history] == pytest.approx([0.05, 0.025, 0.0125])


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    model, opt, gen, train_epoch, validate = _problem()
    full = fit(model, opt, train_epoch, 8, validate=validate, monitor="valid_loss", progress=False)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    model, opt, gen, train_epoch, validate = _problem()
    state = {"state": lambda: {"gen": gen.get_state()}, "load_state": lambda s: gen.set_state(s["gen"])}

    def crash_at_5(epoch):
        if epoch == 5:
            raise KeyboardInterrupt
        return train_epoch(epoch)

    with pytest.raises(KeyboardInterrupt):
        fit(model, opt, crash_at_5, 8, validate=validate, monitor="valid_loss", folder=tmp_path, progress=False,
            **state)
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "best.pt").is_file()
    with open(tmp_path / "metrics.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 5

    torch.manual_seed(12345)  # a fresh process: other global state
    model, opt, gen, train_epoch, validate = _problem(seed=7)  # other initial weights and generator
    resumed = fit(model, opt, train_epoch, 8, validate=validate, monitor="valid_loss", folder=tmp_path,
                  progress=False, **state)
    assert resumed.resumed and resumed.epochs_run == 8 and resumed.best_epoch == full.best_epoch
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    for k, v in model.state_dict().items():
        assert torch.equal(v, reference[k]), k
    # a finished run trains nothing more
    again = fit(model, opt, lambda e: pytest.fail("trained a finished run"), 8, validate=validate,
                monitor="valid_loss", folder=tmp_path, progress=False, **state)
    assert again.resumed and not again.trained and np.isclose(again.best_value, full.best_value)


def test_foreign_checkpoint_is_refused(tmp_path):
    torch.save({"format": "something-else"}, tmp_path / "last.pt")
    model, opt, _, train_epoch, _ = _problem()
    with pytest.raises(ValueError, match="not a checkpoint of the fit loop"):
        fit(model, opt, train_epoch, 2, folder=tmp_path, progress=False)
