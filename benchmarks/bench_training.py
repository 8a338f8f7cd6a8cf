"""Training throughput on the CPU: seconds of training audio per wall-clock second, per phase.

For Phase 1A, 1B and 1C (the step of ``mastering.training.trainer.Trainer``) and the thesis baseline
(``mastering.models.thesis.MelUNetLSTM`` with ``ThesisLoss``, the step of
``mastering.training.thesis``), at the sizes of a profile (``train_config(phase, profile)``: model
widths, batch size, segment length; the thesis baseline: the profile's ``thesis`` section on Phase
1B's budget), one training step is cut into four timed parts:

  pairs     making the batch: the on-the-fly demastering chain of the profile's training mixture
            (``mastering.training.data.build_datasets`` with ``cache=False``, as the full recipe
            trains), in this process (``num_workers=0``), plus ``collate``
  forward   the model's forward pass (Phase 1: with the reference loudness it is conditioned on;
            thesis: the input's STFT magnitude and ``process_magnitude``)
  loss      the training objective (Phase 1: ``MasteringLoss`` terms + the 1C gate regularizers;
            thesis: the target's STFT magnitude and ``ThesisLoss``)
  backward  ``zero_grad``, backward, gradient clipping and the AdamW step

Each part is the median over the timed steps, after one untimed warm-up step on a batch of two
(numba compilation, allocator). Throughput is audio seconds per step (batch x segment length)
over the median step time, with the pairs (a run that makes its pairs on the same cores) and
model only (forward + loss + backward: pairs cached, or made elsewhere). When the profile's data
is not prepared (``load_manifest`` fails) the pairs come from the datasets' pink-noise source,
and the output says so.

The header records ``OMP_WAIT_POLICY`` and the load average: on a shared, busy 2-core machine
torch's OpenMP threads spin between parallel regions and steal the CPU from each other and from the
other jobs; ``OMP_WAIT_POLICY=passive`` (set before Python starts) or ``--threads 1`` made every
part 2-4x faster there (pair-making most), so compare runs made under the same policy and load.

``VARIANTS`` maps a name to a function building the timed step of a phase; every variant runs on
the same settings and its throughput is printed as a ratio to the first (today only ``current``).

Run:  .venv/bin/python benchmarks/bench_training.py --quick --profile smoke   (2 timed steps)
      .venv/bin/python benchmarks/bench_training.py --profile smoke           (5 timed steps)
      .venv/bin/python benchmarks/bench_training.py --profile full --phases 1b  (2 steps; minutes each)
      OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/bench_training.py --quick   (a busy machine)
      add --out build/bench_training.json to keep the rows with their provenance
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from mastering.data.datasets import PairedDataset, PinkNoiseSegments, derive_seed
from mastering.profiles import PROFILES
from mastering.training.config import TrainConfig, train_config
from mastering.training.data import build_datasets, collate

PHASES = ("1a", "1b", "1c", "thesis")
PARTS = ("pairs", "forward", "loss", "backward")
WARMUP_ITEMS = 2


@dataclass
class Setup:
    """One phase's training step, cut into the timed parts.

    ``forward(batch) -> out``, ``loss(batch, out) -> scalar``, ``step(loss)`` (zero_grad, backward,
    clipping, optimizer step); ``data[i]`` makes pair ``i``.
    """

    model: nn.Module
    data: Dataset
    data_note: str
    batch_size: int
    segment_seconds: float
    forward: Callable[[dict[str, Any]], Any]
    loss: Callable[[dict[str, Any], Any], torch.Tensor]
    step: Callable[[torch.Tensor], None]


def phase_config(phase: str, profile: str, segment_seconds: float | None = None, batch_size: int | None = None,
                 ) -> tuple[TrainConfig, dict[str, Any] | None]:
    """``(TrainConfig, thesis settings or None)`` of ``phase`` in ``profile`` on the CPU, with the
    benchmark's data settings (fresh pairs, made in this process) and optional size overrides."""
    sizes: dict[str, Any] = {"device": "cpu", "progress": False,
                             "data": {"cache": False, "num_workers": 0, "valid_items": 1}}
    if segment_seconds is not None:
        sizes["segment_seconds"] = float(segment_seconds)
    if batch_size is not None:
        sizes["batch_size"] = int(batch_size)
    if phase == "thesis":
        from mastering.training.thesis import thesis_config

        config, settings = thesis_config(profile, progress=False, overrides={"train": sizes})
        return config, settings
    return train_config(phase, profile, **sizes), None


def training_pairs(config: TrainConfig, items: int, data: str = "auto") -> tuple[Dataset, str]:
    """``(dataset, note)``: ``items`` fresh training pairs of ``config``'s mixture (``data="real"``
    or ``"auto"`` when the profile's data is prepared), else of the datasets' pink-noise source."""
    if data not in ("auto", "real", "pink"):
        raise ValueError(f"data must be 'auto', 'real' or 'pink', got {data!r}")
    config = TrainConfig.from_dict({**config.to_dict(), "data": {**config.data, "train_items": int(items)}})
    reason = "--data pink"
    if data != "pink":
        try:
            train, _ = build_datasets(config)
        except (FileNotFoundError, ValueError) as err:
            if data == "real":
                raise
            reason = f"profile data not prepared: {str(err).splitlines()[0][:100]}"
        else:
            mix = ", ".join(f"{name} {p:.2f}" for name, p in train.ratios.items())
            return train, f"real pairs from the {config.profile} manifest (mixture: {mix})"
    pink = PairedDataset(PinkNoiseSegments(int(items), float(config.segment_seconds), config.sample_rate),
                         seed=derive_seed(config.seed, "train", "pink"), augment=True)
    return pink, f"SYNTHESIZED pink-noise pairs ({reason})"


def _clip_and_step(optimizer: torch.optim.Optimizer, parameters: list[nn.Parameter], grad_clip: float):
    def step(total: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(parameters, grad_clip)
        optimizer.step()
    return step


def current(phase: str, config: TrainConfig, settings: dict[str, Any] | None, data: Dataset, note: str) -> Setup:
    """Today's code: ``Trainer``'s step for Phase 1A-1C, ``mastering.training.thesis``'s for the thesis."""
    if phase == "thesis":
        from mastering.models.thesis import MelUNetLSTM, ThesisLoss

        torch.manual_seed(config.seed)
        model = MelUNetLSTM(sample_rate=config.sample_rate, channels=2, **settings["model"])
        loss_fn = ThesisLoss(**settings["loss"])
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

        def forward(batch):
            return model.process_magnitude(model.stft(batch["degraded"]).abs())

        def loss(batch, out):
            return loss_fn(out, model.stft(batch["mastered"]).abs())

        step = _clip_and_step(optimizer, list(model.parameters()), config.grad_clip)
    else:
        from mastering.training.trainer import Trainer

        trainer = Trainer(config, data, data, run_dir=Path("unused-bench-run"), publish=False)  # writes nothing
        model = trainer.module

        def forward(batch):  # Trainer.batch_losses, cut where the model's output is ready
            y = batch["mastered"]
            return trainer.model(batch["degraded"], target_lufs=trainer._reference_lufs(y))

        def loss(batch, out):
            return trainer._total(trainer._terms(out["output"], batch["mastered"], out["params"]))

        step = _clip_and_step(trainer.optimizer, list(model.parameters()), config.grad_clip)
    model.train()
    return Setup(model, data, note, config.batch_size, float(config.segment_seconds), forward, loss, step)


VARIANTS: dict[str, Callable[[str, TrainConfig, dict[str, Any] | None, Dataset, str], Setup]] = {
    "current": current,
}
"""name -> ``build(phase, config, thesis_settings, data, data_note) -> Setup``; the first is the reference."""


def _timed_step(setup: Setup, indices: range) -> dict[str, float]:
    """Seconds of each part of one training step on the pairs ``indices``, and of the whole ``step``."""
    marks = [time.perf_counter()]
    batch = collate([setup.data[i] for i in indices])
    marks.append(time.perf_counter())
    out = setup.forward(batch)
    marks.append(time.perf_counter())
    total = setup.loss(batch, out)
    marks.append(time.perf_counter())
    if not torch.isfinite(total):
        raise RuntimeError(f"non-finite training loss {float(total)}")
    setup.step(total)
    marks.append(time.perf_counter())
    times = {part: marks[k + 1] - marks[k] for k, part in enumerate(PARTS)}
    times["step"] = marks[-1] - marks[0]
    return times


def measure(phase: str, profile: str = "smoke", variants: list[str] | None = None, steps: int = 2,
            segment_seconds: float | None = None, batch_size: int | None = None, data: str = "auto",
            warmup: bool = True) -> list[dict[str, Any]]:
    """Time ``steps`` training steps of ``phase`` for each variant; one row per variant.

    A row: ``phase``, ``variant``, ``params`` (trainable), ``batch_size``, ``segment_seconds``,
    ``audio_s_per_step``, the median seconds of each part (``pairs_s``, ``forward_s``, ``loss_s``,
    ``backward_s``) and of the whole step (``step_s``), ``audio_s_per_s`` (with the pairs),
    ``model_audio_s_per_s`` (without), ``data`` (where the pairs came from), ``steps`` and the raw
    per-step ``times``.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    config, settings = phase_config(phase, profile, segment_seconds, batch_size)
    n = config.batch_size
    items = WARMUP_ITEMS * warmup + n * steps
    rows = []
    for name in variants or list(VARIANTS):
        pairs, note = training_pairs(config, items, data)
        setup = VARIANTS[name](phase, config, settings, pairs, note)
        first = 0
        if warmup:
            _timed_step(setup, range(WARMUP_ITEMS))
            first = WARMUP_ITEMS
        times = [_timed_step(setup, range(first + k * n, first + (k + 1) * n)) for k in range(steps)]
        med = {part: statistics.median(t[part] for t in times) for part in (*PARTS, "step")}
        audio = setup.batch_size * setup.segment_seconds
        model_s = statistics.median(t["forward"] + t["loss"] + t["backward"] for t in times)
        rows.append({
            "phase": phase, "variant": name,
            "params": sum(p.numel() for p in setup.model.parameters() if p.requires_grad),
            "batch_size": setup.batch_size, "segment_seconds": setup.segment_seconds, "audio_s_per_step": audio,
            **{f"{part}_s": med[part] for part in (*PARTS, "step")},
            "audio_s_per_s": audio / med["step"], "model_audio_s_per_s": audio / model_s,
            "data": setup.data_note, "steps": steps, "times": times,
        })
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    """One table per phase; ratios of throughput to the first variant of that phase."""
    for phase in dict.fromkeys(r["phase"] for r in rows):
        group = [r for r in rows if r["phase"] == phase]
        ref = group[0]
        label = "thesis baseline (MelUNetLSTM)" if phase == "thesis" else f"Phase {phase.upper()}"
        print(f"\n{label}: {ref['params']:,} parameters, batch {ref['batch_size']} x {ref['segment_seconds']:g} s = "
              f"{ref['audio_s_per_step']:g} s of audio per step; {ref['data']}")
        width = max(7, max(len(r["variant"]) for r in group))
        print(f"{'variant':<{width}}  {'pairs s':>8} {'fwd s':>8} {'loss s':>8} {'bwd+opt s':>9} {'step s':>8}  "
              f"{'audio s/s':>9} {'x first':>7}  {'model-only':>10} {'x first':>7}")
        for r in group:
            parts = "".join(f"{r[f'{p}_s']:8.3f} " for p in PARTS[:3]) + f"{r['backward_s']:9.3f} "
            print(f"{r['variant']:<{width}}  {parts}{r['step_s']:8.3f}  {r['audio_s_per_s']:9.3f} "
                  f"{r['audio_s_per_s'] / ref['audio_s_per_s']:7.2f}  {r['model_audio_s_per_s']:10.3f} "
                  f"{r['model_audio_s_per_s'] / ref['model_audio_s_per_s']:7.2f}")
        shares = ", ".join(f"{p} {100 * ref[f'{p}_s'] / ref['step_s']:.0f} %" for p in PARTS)
        print(f"  where {ref['variant']}'s step goes: {shares}")


def _plain(value: Any) -> Any:
    """``value`` with non-finite floats as ``None`` (strict JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="smoke", choices=sorted(PROFILES),
                        help="sizes (model widths, batch, segment) from train_config(phase, profile)")
    parser.add_argument("--quick", action="store_true", help="fewer timed steps (full 1, others 2)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per phase (default full 2, others 5)")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--variants", default=None, help=f"comma-separated subset of {','.join(VARIANTS)} (all)")
    parser.add_argument("--threads", type=int, default=2, help="torch and numba threads (default 2)")
    parser.add_argument("--segment-seconds", type=float, default=None, help="override the profile's segment length")
    parser.add_argument("--batch-size", type=int, default=None, help="override the profile's batch size")
    parser.add_argument("--data", default="auto", choices=["auto", "real", "pink"],
                        help="pairs: the profile's prepared music when there is some (auto), or pink noise")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up step")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()

    phases = [p.strip().lower() for p in args.phases.split(",") if p.strip()]
    variants = [v.strip() for v in args.variants.split(",")] if args.variants else list(VARIANTS)
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s) {sorted(unknown)}; have {sorted(VARIANTS)}")
    steps = args.steps or ((1 if args.quick else 2) if args.profile == "full" else (2 if args.quick else 5))
    try:
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    # after numba: starting numba's OpenMP pool resets the (shared libgomp) thread count torch uses
    torch.set_num_threads(args.threads)

    wait_policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Training throughput on the CPU, profile {args.profile}, torch {torch.__version__}, "
          f"torch.set_num_threads({torch.get_num_threads()}), {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), OMP_WAIT_POLICY {wait_policy}, load average "
          f"{load:.1f} at start; median of {steps} step(s){'' if args.no_warmup else ' after a warm-up step'}")
    rows = []
    for phase in phases:
        start = time.perf_counter()
        rows += measure(phase, args.profile, variants, steps, args.segment_seconds, args.batch_size, args.data,
                        warmup=not args.no_warmup)
        print(f"[{phase}: {time.perf_counter() - start:.0f} s]", flush=True)
    print_table(rows)
    print("\naudio s/s: seconds of training audio per wall-clock second, pairs made in this process on the same "
          "cores;\nmodel-only: forward + loss + backward (pairs cached, or made by workers on other cores). "
          "x first: ratio to the first variant.")
    if torch.get_num_threads() != args.threads:
        print(f"note: torch's thread count changed to {torch.get_num_threads()} during the run")
    if args.out:
        from mastering.provenance import atomic_write_text, git_commit

        record = {"benchmark": "bench_training", "profile": args.profile, "torch": torch.__version__,
                  "threads": args.threads, "omp_wait_policy": wait_policy, "cpu_count": os.cpu_count(),
                  "load_average": load, "steps": steps, "commit": git_commit(),
                  "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "rows": rows}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(_plain(record), indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
