"""Run the numbered notebooks in order through papermill.

    python -m mastering.notebooks run --profile smoke [--only 01,03] [--output-dir build/notebooks]
    python -m mastering.notebooks list

Notebooks are ``notebooks/NN_name.ipynb``; they run in numeric order with the profile passed as the
papermill parameter ``profile`` (plus any ``--param key=value``). Executed copies go to a
git-ignored folder; the sources stay clean. The run stops at the first failure and names the
notebook and the failing cell. Wall-clock time per notebook is recorded in ``timings.json`` beside
the executed copies, which the README's timing table is made from.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from . import paths
from .profiles import PROFILES, key_value

_NAME = re.compile(r"^(\d{2})_[\w-]+\.ipynb$")


class NotebookFailure(RuntimeError):
    """A notebook failed; the message names the notebook and the failing cell."""

    def __init__(self, notebook: Path, message: str, output: Path | None = None):
        super().__init__(message)
        self.notebook = notebook
        self.output = output


@dataclass(frozen=True)
class Notebook:
    number: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.stem


def discover(folder: Path | None = None) -> list[Notebook]:
    """The numbered notebooks in ``folder`` (default ``notebooks/``) in numeric order."""
    folder = Path(folder) if folder else paths.notebooks_dir()
    found = [Notebook(m.group(1), p) for p in folder.glob("*.ipynb") if (m := _NAME.match(p.name))]
    return sorted(found, key=lambda nb: (int(nb.number), nb.path.name))


def select(notebooks: Iterable[Notebook], only: str | None) -> list[Notebook]:
    """Keep the notebooks whose number (``01``) or name is listed in the comma-separated ``only``."""
    notebooks = list(notebooks)
    if not only:
        return notebooks
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen, unknown = [], []
    for w in wanted:
        hits = [nb for nb in notebooks if nb.number == w.zfill(2) or nb.name == w or nb.path.name == w]
        (chosen.extend(hits) if hits else unknown.append(w))
    if unknown:
        raise ValueError(f"no notebook matches {unknown}; available: {[nb.name for nb in notebooks]}")
    return sorted(set(chosen), key=lambda nb: (int(nb.number), nb.path.name))


def run_notebook(
    notebook: Path,
    profile: str = "smoke",
    output_dir: Path | None = None,
    parameters: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    log_output: bool = False,
) -> Path:
    """Execute one notebook with papermill and return the executed copy's path.

    Raises:
        NotebookFailure: naming the notebook, the failing cell and its error.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    notebook = Path(notebook).resolve()
    output_dir = Path(output_dir) if output_dir else paths.build_dir() / "notebooks" / profile
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / notebook.name
    params = {"profile": profile, **(parameters or {})}
    saved_env = dict(os.environ)
    os.environ.update({"MASTERING_NOTEBOOK": notebook.stem, "MPLBACKEND": "agg", **(env or {})})
    try:
        pm.execute_notebook(
            str(notebook), str(output), parameters=params, kernel_name="python3",
            cwd=str(notebook.parent), progress_bar=False, log_output=log_output,
        )
    except PapermillExecutionError as exc:
        source = "\n".join("    " + line for line in (exc.source or "").splitlines()[:12])
        raise NotebookFailure(
            notebook,
            f"{notebook.name} failed in cell {exc.cell_index} (execution count {exc.exec_count}): "
            f"{exc.ename}: {exc.evalue}\n  cell source:\n{source}\n  executed copy: {output}",
            output,
        ) from None
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    return output


def run_all(
    profile: str = "smoke",
    only: str | None = None,
    output_dir: Path | None = None,
    parameters: dict[str, Any] | None = None,
    folder: Path | None = None,
) -> dict[str, float]:
    """Run the selected notebooks in order; return ``{name: seconds}``. Stops at the first failure."""
    from tqdm.auto import tqdm

    notebooks = select(discover(folder), only)
    if not notebooks:
        raise ValueError(f"no numbered notebooks found in {folder or paths.notebooks_dir()}")
    output_dir = Path(output_dir) if output_dir else paths.build_dir() / "notebooks" / profile
    timings_path = output_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    done: dict[str, float] = {}
    bar = tqdm(notebooks, desc=f"notebooks ({profile})", unit="nb", file=sys.stdout)
    for nb in bar:
        bar.set_postfix_str(nb.name)
        start = time.perf_counter()
        run_notebook(nb.path, profile, output_dir, parameters)
        seconds = time.perf_counter() - start
        done[nb.name] = seconds
        timings[nb.name] = {"seconds": round(seconds, 1), "profile": profile, "date": time.strftime("%Y-%m-%d")}
        output_dir.mkdir(parents=True, exist_ok=True)
        timings_path.write_text(json.dumps(timings, indent=2, sort_keys=True) + "\n")
        tqdm.write(f"  {nb.path.name}: ok ({seconds:.1f} s)", file=sys.stdout)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mastering.notebooks", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="execute the numbered notebooks in order")
    run.add_argument("--profile", default="smoke", choices=sorted(PROFILES))
    run.add_argument("--only", help="comma-separated numbers or names, e.g. 01,03")
    run.add_argument("--output-dir", type=Path, help="where executed copies go (default build/notebooks/PROFILE)")
    run.add_argument("--param", action="append", type=key_value, default=[], help="extra papermill parameter key=value")
    sub.add_parser("list", help="list the numbered notebooks")
    args = parser.parse_args(argv)
    if args.cmd == "list":
        for nb in discover():
            print(f"{nb.number}  {nb.path.relative_to(paths.REPO_ROOT)}")
        return 0
    try:
        timings = run_all(args.profile, args.only, args.output_dir, dict(args.param))
    except NotebookFailure as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = sum(timings.values())
    print(f"ran {len(timings)} notebook(s) in profile {args.profile!r} in {total:.0f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
