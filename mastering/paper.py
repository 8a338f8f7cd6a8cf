"""The paper's artefact registry, the method's number file and the check that ``make paper`` runs.

:data:`ARTEFACTS` declares every figure, table and number file the manuscript uses, with the
notebook and the one package function that writes it (``tests/test_paper.py`` keeps it in step
with the code). The manuscripts (:data:`MANUSCRIPTS`: the paper ``paper/main.tex`` and its
supplement ``paper/supplement.tex``, which share ``paper/preamble.tex``) name artefacts only
through its macros (:func:`referenced_artefacts`); :func:`audit` / :func:`check` compare the two
before LaTeX runs.

Command line: ``python -m mastering.paper check|numbers [--profile smoke|full]`` (check the
artefacts; write ``numbers_method.tex``), ``map`` (write ``paper/artefacts.tex``), ``list`` (the
registry and what exists), ``readme`` (the README's map and timing tables).
"""

from __future__ import annotations

import argparse
import ast
import collections
import inspect
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

from . import paths
from .data import demaster
from .defaults import HIGHPASS_ORDER
from .dsp import eq
from .evaluation.listening_design import RATING_MAX, RATING_MIN
from .figures import ARTEFACT_NAME_RE, profile_note, read_numbers, save_numbers
from .literature import STREAMING_TARGETS_LUFS
from .losses.combined import MasteringLoss
from .losses.stft import DEFAULT_FFT_SIZES
from .master import master_file
from .models import encoder as enc
from .models import mastering as mm
from .profiles import PROFILES, get_profile
from .provenance import atomic_write_text, git_commit
from .semantic import safedb

__all__ = [
    "Artefact",
    "ARTEFACTS",
    "MANUSCRIPTS",
    "manuscripts",
    "KINDS",
    "SAVE_FUNCTIONS",
    "Problem",
    "Audit",
    "SaveCall",
    "referenced_artefacts",
    "referenced_values",
    "scan_save_calls",
    "scan_notebook_save_calls",
    "render_artefact_map",
    "write_artefact_map",
    "audit",
    "check",
    "infer_profile",
    "method_numbers",
    "profile_scope",
    "write_method_numbers",
    "readme_tables",
    "main",
]

KINDS = ("figure", "table", "numbers")
"""What an artefact can be: a figure (PDF + PNG), a table (``.tex``) or a number file (``.tex`` macros)."""

SAVE_FUNCTIONS = {"save_figure": "figure", "save_table": "table", "save_numbers": "numbers"}
"""The writers (:mod:`mastering.figures`), and the kind each writes."""

BUILD_PRODUCER = "make paper"
"""Who writes an artefact whose ``notebook`` is ``None``: the paper build itself (code constants)."""

_NOTEBOOK_RE = re.compile(r"^\d{2}_[\w-]+$")


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Artefact:
    """One generated file set of the paper.

    Attributes:
        name: file stem (``lit_eq_recovery``); for ``numbers`` the file is ``numbers_<name>.tex``.
        kind: ``"figure"``, ``"table"`` or ``"numbers"``.
        notebook: stem of the notebook that writes it (``01_literature``), or ``None`` for number
            files that ``make paper`` writes from the code itself.
        function: dotted path of the one package function that writes it.
    """

    name: str
    kind: str
    notebook: str | None
    function: str

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"artefact {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if not ARTEFACT_NAME_RE.match(self.name):
            raise ValueError(f"artefact name {self.name!r} must be lower-case letters, digits and '_'")
        if self.notebook is not None and not _NOTEBOOK_RE.match(self.notebook):
            raise ValueError(f"artefact {self.name!r}: notebook {self.notebook!r} is not of the form NN_name")
        if not self.function.startswith("mastering.") or self.function.count(".") < 2:
            raise ValueError(f"artefact {self.name!r}: function {self.function!r} must be mastering.<module>.<fn>")

    @property
    def module(self) -> str:
        """Dotted module of :attr:`function` (``mastering.literature``)."""
        return self.function.rsplit(".", 1)[0]

    @property
    def module_path(self) -> Path:
        """The module's source, relative to the repository root."""
        rel = Path(*self.module.split("."))
        package = rel / "__init__.py"
        if (paths.REPO_ROOT / package).exists() and not (paths.REPO_ROOT / rel.with_suffix(".py")).exists():
            return package
        return rel.with_suffix(".py")

    @property
    def notebook_path(self) -> Path | None:
        """The notebook's source, relative to the repository root (``None`` for build-time numbers)."""
        return Path("notebooks") / f"{self.notebook}.ipynb" if self.notebook else None

    @property
    def producer(self) -> str:
        """Who writes it, in words: ``notebook 01_literature`` or ``make paper``."""
        return f"notebook {self.notebook}" if self.notebook else BUILD_PRODUCER

    def files(self, paper_dir: Path | None = None) -> list[Path]:
        """The generated files, main file first (the sidecar is ``<main file>.json``)."""
        root = Path(paper_dir) if paper_dir else paths.paper_dir()
        if self.kind == "figure":
            return [root / "figures" / f"{self.name}.pdf", root / "figures" / f"{self.name}.png"]
        if self.kind == "table":
            return [root / "tables" / f"{self.name}.tex"]
        return [root / "tables" / f"numbers_{self.name}.tex"]

    def sidecar(self, paper_dir: Path | None = None) -> Path:
        return Path(str(self.files(paper_dir)[0]) + ".json")


def _declare(*artefacts: Artefact) -> dict[str, Artefact]:
    registry: dict[str, Artefact] = {}
    for art in artefacts:
        if art.name in registry:
            raise ValueError(f"artefact {art.name!r} declared twice")
        registry[art.name] = art
    return registry


_LIT = "mastering.literature"
_DATA = "mastering.data.report"
_SEM = "mastering.semantic.report"
_MOD = "mastering.models.report"
_LT = "mastering.evaluation.report_listening"

ARTEFACTS: dict[str, Artefact] = _declare(
    # notebooks/01_literature.ipynb -- mastering.literature
    Artefact("lit_eq_recovery", "figure", "01_literature", f"{_LIT}.fig_eq_recovery"),
    Artefact("lit_phase_invariance", "figure", "01_literature", f"{_LIT}.fig_phase_invariance"),
    Artefact("lit_weighting_curves", "figure", "01_literature", f"{_LIT}.fig_weighting_curves"),
    Artefact("lit_tcn_receptive_field", "figure", "01_literature", f"{_LIT}.fig_tcn_receptive_field"),
    Artefact("lit_unet_skip", "figure", "01_literature", f"{_LIT}.fig_unet_skip"),
    Artefact("lit_loudness_platforms", "figure", "01_literature", f"{_LIT}.fig_loudness_platforms"),
    Artefact("lit_loudness_real_tracks", "table", "01_literature", f"{_LIT}.table_loudness_real_tracks"),
    Artefact("literature", "numbers", "01_literature", f"{_LIT}.numbers_literature"),
    # notebooks/02_data_synthesis.ipynb -- mastering.data.report
    Artefact("data_statistics", "table", "02_data_synthesis", f"{_DATA}.table_data_statistics"),
    Artefact("data_spectrogram_pairs", "figure", "02_data_synthesis", f"{_DATA}.fig_spectrogram_pairs"),
    Artefact("data_param_distributions", "figure", "02_data_synthesis", f"{_DATA}.fig_param_distributions"),
    Artefact("data_segment_loudness", "figure", "02_data_synthesis", f"{_DATA}.fig_segment_loudness"),
    # notebooks/03_phase1a.ipynb, 04_phase1b.ipynb, 05_phase1c.ipynb -- mastering.models.report
    *[Artefact(f"phase{phase}_{what}", kind, notebook, f"{_MOD}.{fn}")
      for phase, notebook in (("1a", "03_phase1a"), ("1b", "04_phase1b"), ("1c", "05_phase1c"))
      for what, kind, fn in (("training_curves", "figure", "fig_training_curves"),
                             ("valid_components", "figure", "fig_validation_components"),
                             ("eq_curves", "figure", "fig_eq_curves"),
                             ("spectrograms", "figure", "fig_spectrograms"),
                             ("validation", "table", "table_validation"))],
    *[Artefact(f"phase{phase}_results", "numbers", notebook, f"{_MOD}.numbers_validation")
      for phase, notebook in (("1a", "03_phase1a"), ("1b", "04_phase1b"), ("1c", "05_phase1c"))],
    Artefact("phase1c_band_usage", "figure", "05_phase1c", f"{_MOD}.fig_band_usage"),
    Artefact("phase1_parameter_counts", "table", "03_phase1a", f"{_MOD}.table_parameter_counts"),
    # notebooks/06_evaluation.ipynb -- mastering.evaluation.report (runs: mastering.evaluation.benchmark)
    *[Artefact(name, kind, "06_evaluation", f"mastering.evaluation.report.{fn}")
      for name, kind, fn in (("eval_metrics", "table", "table_evaluation_metrics"),
                             ("eval_paired_tests", "table", "table_evaluation_tests"),
                             ("eval_speed", "table", "table_evaluation_speed"),
                             ("eval_baselines", "table", "table_evaluation_baselines"),
                             ("eval_metric_distributions", "figure", "fig_metric_distributions"),
                             ("eval_example_spectra", "figure", "fig_example_spectra"),
                             ("eval_quality_speed", "figure", "fig_quality_speed"),
                             ("evaluation", "numbers", "numbers_evaluation"),
                             ("baselines", "numbers", "numbers_baselines"),
                             ("oracle", "numbers", "numbers_oracle"),
                             ("eval_predictability", "figure", "fig_predictability"),
                             ("predictability", "numbers", "numbers_predictability"),
                             ("eval_learning_curve", "figure", "fig_learning_curve"),
                             ("learning_curve", "numbers", "numbers_learning_curve"))],
    # notebooks/07_semantic_vae.ipynb -- mastering.semantic.report
    Artefact("safedb_descriptor_counts", "table", "07_semantic_vae", f"{_SEM}.table_descriptor_counts"),
    Artefact("semantic_vae_reconstruction", "table", "07_semantic_vae", f"{_SEM}.table_vae_reconstruction"),
    Artefact("semantic_latent_map", "figure", "07_semantic_vae", f"{_SEM}.fig_latent_map"),
    Artefact("semantic_vae", "numbers", "07_semantic_vae", f"{_SEM}.numbers_semantic_vae"),
    # notebooks/08_audio_encoder.ipynb, 09_adaptive_semantic_eq.ipynb -- mastering.semantic.report
    Artefact("semantic_encoder_comparison", "table", "08_audio_encoder", f"{_SEM}.table_encoder_comparison"),
    Artefact("semantic_encoder_predictions", "figure", "08_audio_encoder", f"{_SEM}.fig_encoder_predictions"),
    Artefact("semantic_encoder", "numbers", "08_audio_encoder", f"{_SEM}.numbers_encoder"),
    Artefact("semantic_eq_comparison", "table", "09_adaptive_semantic_eq", f"{_SEM}.table_semantic_eq_comparison"),
    Artefact("semantic_eq_adaptivity", "figure", "09_adaptive_semantic_eq", f"{_SEM}.fig_semantic_eq_adaptivity"),
    Artefact("semantic_eq_intensity", "figure", "09_adaptive_semantic_eq", f"{_SEM}.fig_semantic_eq_intensity"),
    Artefact("semantic_eq_examples", "figure", "09_adaptive_semantic_eq", f"{_SEM}.fig_semantic_eq_examples"),
    Artefact("semantic_eq", "numbers", "09_adaptive_semantic_eq", f"{_SEM}.numbers_semantic_eq"),
    Artefact("semantic_eq_direction", "table", "09_adaptive_semantic_eq", f"{_SEM}.table_semantic_eq_direction"),
    Artefact("semantic_direction", "numbers", "09_adaptive_semantic_eq", f"{_SEM}.numbers_semantic_direction"),
    # notebooks/10_semantic_e2e.ipynb -- mastering.semantic.report_e2e
    *[Artefact(name, kind, "10_semantic_e2e", f"mastering.semantic.report_e2e.{fn}")
      for name, kind, fn in (("semantic_e2e_training", "figure", "fig_e2e_training"),
                             ("semantic_e2e_comparison", "table", "table_e2e_comparison"),
                             ("semantic_e2e_differences", "table", "table_e2e_differences"),
                             ("semantic_e2e_intensity", "figure", "fig_e2e_intensity"),
                             ("semantic_refinement", "table", "table_refinement"),
                             ("semantic_refinement_tradeoff", "figure", "fig_refinement"),
                             ("semantic_e2e", "numbers", "numbers_e2e"))],
    # notebooks/11_clap_ablation.ipynb -- mastering.semantic.report_clap
    Artefact("clap_ablation", "table", "11_clap_ablation", "mastering.semantic.report_clap.table_clap_ablation"),
    Artefact("clap_ablation_bars", "figure", "11_clap_ablation", "mastering.semantic.report_clap.fig_clap_ablation"),
    Artefact("clap", "numbers", "11_clap_ablation", "mastering.semantic.report_clap.numbers_clap"),
    # notebooks/12_listening_test_anova.ipynb -- mastering.evaluation.report_listening (statistics: mastering.evaluation.listening_analysis)
    *[Artefact(name, kind, "12_listening_test_anova", f"{_LT}.{fn}")
      for name, kind, fn in (("listening_means", "figure", "fig_listening_means"),
                             ("listening_anova", "table", "table_listening_anova"),
                             ("listening_mixed_model", "table", "table_listening_mixed_model"),
                             ("listening_pairwise", "table", "table_listening_pairwise"),
                             ("listening_power_curve_simulated", "figure", "fig_power_curve_simulated"),
                             ("listening_power_simulated", "table", "table_power_simulated"),
                             ("listening_objective_anova", "table", "table_objective_anova"),
                             ("listening_objective_proxies", "figure", "fig_objective_proxies"))],
    # make paper -- constants of the code that the method section quotes
    Artefact("method", "numbers", None, "mastering.paper.write_method_numbers"),
)
"""Every generated figure, table and number file of the paper: name -> :class:`Artefact`.

Every ``save_figure`` / ``save_table`` / ``save_numbers`` call of the package is registered, and
every artefact is written by exactly the function named here. A function may write one artefact
per phase through an f-string name (``f"phase{phase}_eq_curves"``); the registry then lists each
concrete name with the notebook that makes it.
"""


# --------------------------------------------------------------------------------------------
# What the manuscript references
# --------------------------------------------------------------------------------------------
_COMMENT = re.compile(r"(?<!\\)%.*")
_MACRO_KIND = {"genfigure": "figure", "gentable": "table", "loadnumbers": "numbers"}
_REF = re.compile(r"\\(genfigure|gentable|loadnumbers)\*?\s*(?:\[[^\]]*\])?\s*\{([^}]*)\}")
_VAL = re.compile(r"\\genval\s*\{([^}]*)\}\s*\{([^}]*)\}")
_INPUT = re.compile(r"\\(?:input|include)\s*\{([^}]*)\}")
_WORD = re.compile(r"^[A-Za-z0-9_]+$")
_ALIAS = re.compile(r"\\(?:re)?newcommand\s*\{?\\([A-Za-z]+)\}?\s*\{\\genval\s*\{([^}]*)\}\s*\}")


def _values_in(texts: list[str]) -> list[tuple[str, str]]:
    """``(numbers name, key)`` of every ``\\genval{name}{key}`` and of shorthands defined as
    ``\\newcommand{\\M}{\\genval{name}}`` and used as ``\\M{key}``."""
    found = [(n.strip(), k.strip()) for text in texts for n, k in _VAL.findall(text)]
    aliases = {alias: name.strip() for text in texts for alias, name in _ALIAS.findall(text)}
    for alias, name in aliases.items():
        pattern = re.compile(rf"\\{alias}(?![A-Za-z])\s*\{{([^}}]*)\}}")
        found += [(name, k.strip()) for text in texts for k in pattern.findall(text)]
    # macro definitions (\genval{#1}{#2}, \newcommand\M{\genval{x}}) are not references
    return [(n, k) for n, k in found if _WORD.match(n) and _WORD.match(k)]


MANUSCRIPTS = ("main.tex", "supplement.tex")
"""The documents ``make paper`` builds, in ``paper/``: the paper and its supplement."""

TexPaths = Union[Path, str, Iterable[Union[Path, str]], None]
"""A manuscript path, several, or ``None`` for :data:`MANUSCRIPTS`."""


def manuscripts(tex_path: TexPaths = None) -> list[Path]:
    """The manuscripts to read: ``tex_path`` (one path or several), else every existing file of
    :data:`MANUSCRIPTS` (the paper and its supplement)."""
    if tex_path is None:
        root = paths.REPO_ROOT / "paper"
        return [root / name for name in MANUSCRIPTS if (root / name).exists()] or [root / MANUSCRIPTS[0]]
    if isinstance(tex_path, (str, Path)):
        return [Path(tex_path)]
    return [Path(p) for p in tex_path]


def _stripped_sources(tex_path: TexPaths) -> list[str]:
    sources: list[Path] = []
    for doc in manuscripts(tex_path):
        sources += [s for s in _tex_sources(doc) if s not in sources]
    return [_COMMENT.sub("", source.read_text()) for source in sources]


def _tex_sources(tex_path: Path) -> list[Path]:
    """``tex_path`` and every manuscript file it inputs (recursively), generated files excepted."""
    root = tex_path.parent
    seen: list[Path] = []
    todo = [tex_path]
    while todo:
        path = todo.pop(0)
        if path in seen or not path.exists():
            continue
        seen.append(path)
        text = _COMMENT.sub("", path.read_text())
        for target in _INPUT.findall(text):
            target = target.strip()
            if target.startswith(("figures/", "tables/")) or "#" in target:
                continue
            candidate = root / target
            if candidate.suffix != ".tex":
                candidate = candidate.with_name(candidate.name + ".tex")
            todo.append(candidate)
    return seen


def referenced_artefacts(tex_path: TexPaths = None) -> dict[str, str]:
    """The artefacts the manuscripts use, ``{name: kind}``, read from ``tex_path`` (default: the
    paper and its supplement, :func:`manuscripts`) and their inputs.

    Reads ``\\genfigure``, ``\\gentable`` (and ``\\gentable*``), ``\\loadnumbers`` and ``\\genval``
    (and shorthands for it, see :func:`referenced_values`), comments ignored::

        \\genfigure[width=\\columnwidth]{lit_eq_recovery}   % paper/figures/lit_eq_recovery.pdf
        \\gentable{lit_loudness_real_tracks}                % paper/tables/lit_loudness_real_tracks.tex
        \\loadnumbers{literature}                            % paper/tables/numbers_literature.tex
        \\genval{literature}{eq_error_end_db}                % one number of that file

    Each macro stops the LaTeX run with the artefact's name and notebook when its file is missing.
    A name used with two kinds is reported by :func:`audit`; here the first use wins.
    """
    found: dict[str, str] = {}
    for name, kinds in _referenced_kinds(tex_path).items():
        found[name] = sorted(kinds, key=lambda k: KINDS.index(k))[0] if len(kinds) > 1 else next(iter(kinds))
    return found


def _referenced_kinds(tex_path: TexPaths) -> dict[str, set[str]]:
    texts = _stripped_sources(tex_path)
    kinds: dict[str, set[str]] = {}
    for text in texts:
        for macro, name in _REF.findall(text):
            if _WORD.match(name.strip()):  # not a macro definition (\gentable{\@ifstar...}, {#2})
                kinds.setdefault(name.strip(), set()).add(_MACRO_KIND[macro])
    for name, _key in _values_in(texts):
        kinds.setdefault(name, set()).add("numbers")
    return kinds


def referenced_values(tex_path: TexPaths = None) -> dict[str, set[str]]:
    """The numbers the manuscripts print: ``{numbers name: {keys}}`` (default: paper and supplement).

    Reads every ``\\genval{name}{key}`` and every use ``\\M{key}`` of a shorthand defined as
    ``\\newcommand{\\M}{\\genval{name}}``.
    """
    found: dict[str, set[str]] = collections.defaultdict(set)
    for name, key in _values_in(_stripped_sources(tex_path)):
        found[name].add(key)
    return dict(found)


# --------------------------------------------------------------------------------------------
# What the package and the notebooks write
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SaveCall:
    """A ``save_figure`` / ``save_table`` / ``save_numbers`` call found in the source.

    ``name`` is the artefact name when it is a string literal (or a parameter whose default is
    one); for an f-string such as ``f"phase{phase}_eq_curves"`` it is ``None`` and ``pattern``
    is the regular expression of the names it can produce (``phase(.+)_eq_curves``), so that the
    registry can list each concrete name. Both are ``None`` when the name cannot be read
    statically. ``function`` is the dotted path of the enclosing function.
    """

    name: str | None
    kind: str
    function: str
    path: Path
    lineno: int
    pattern: str | None = None

    def writes(self, name: str) -> bool:
        """Whether this call can write artefact ``name`` (its literal name, or its f-string pattern)."""
        if self.name is not None:
            return self.name == name
        return self.pattern is not None and re.fullmatch(self.pattern, name) is not None


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _parameter_default(func: ast.AST | None, name: str) -> ast.AST | None:
    """The default value of parameter ``name`` of a function definition, if it has one."""
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    a = func.args
    positional = a.posonlyargs + a.args
    for arg, default in zip(positional[len(positional) - len(a.defaults):], a.defaults):
        if arg.arg == name:
            return default
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        if arg.arg == name:
            return default
    return None


def _name_arg(node: ast.Call, writer: str, func: ast.AST | None = None) -> tuple[str | None, str | None]:
    """``(name, pattern)`` of a writer call's artefact name (see :class:`SaveCall`)."""
    position = 0 if writer == "save_numbers" else 1
    arg = None
    if len(node.args) > position and not any(isinstance(a, ast.Starred) for a in node.args[:position + 1]):
        arg = node.args[position]
    for kw in node.keywords:
        if kw.arg == "name":
            arg = kw.value
    if isinstance(arg, ast.JoinedStr):
        parts = []
        for value in arg.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                parts.append(re.escape(value.value))
            else:
                parts.append("(.+)")
        return None, "".join(parts)
    name = _literal_name(node, writer, func)
    return name, (re.escape(name) if name is not None else None)


def _literal_name(node: ast.Call, writer: str, func: ast.AST | None = None) -> str | None:
    """The artefact name of a writer call: a string literal, or a parameter of the enclosing
    function whose default is a string literal (``def fig_x(..., name="fig_x")``)."""
    position = 0 if writer == "save_numbers" else 1
    arg = None
    if len(node.args) > position and not any(isinstance(a, ast.Starred) for a in node.args[:position + 1]):
        arg = node.args[position]
    for kw in node.keywords:
        if kw.arg == "name":
            arg = kw.value
    if isinstance(arg, ast.Name):
        arg = _parameter_default(func, arg.id)
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None


class _SaveVisitor(ast.NodeVisitor):
    def __init__(self, module: str, path: Path):
        self.module, self.path, self.stack, self.calls = module, path, [], []
        self.nodes: list[ast.AST] = []

    def _scoped(self, node):
        self.stack.append(node.name)
        self.nodes.append(node)
        self.generic_visit(node)
        self.stack.pop()
        self.nodes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_Call(self, node: ast.Call):
        writer = _call_name(node)
        if writer in SAVE_FUNCTIONS:
            function = ".".join([self.module] + self.stack)
            enclosing = self.nodes[-1] if self.nodes else None
            name, pattern = _name_arg(node, writer, enclosing)
            self.calls.append(SaveCall(name, SAVE_FUNCTIONS[writer], function, self.path, node.lineno, pattern))
        self.generic_visit(node)


def _module_name(path: Path, package_dir: Path) -> str:
    rel = path.relative_to(package_dir.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def scan_save_calls(package_dir: Path | None = None) -> list[SaveCall]:
    """Every call of a writer (:data:`SAVE_FUNCTIONS`) in the package's source, by static analysis."""
    package_dir = Path(package_dir) if package_dir else paths.REPO_ROOT / "mastering"
    calls: list[SaveCall] = []
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        visitor = _SaveVisitor(_module_name(path, package_dir), path)
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        calls.extend(visitor.calls)
    return calls


def _notebook_code(path: Path) -> str:
    """The code cells of a notebook, IPython magics and shell lines blanked out."""
    nb = json.loads(Path(path).read_text())
    cells = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
        cells.append("\n".join(lines))
    return "\n\n".join(cells)


def scan_notebook_save_calls(notebooks_dir: Path | None = None) -> list[tuple[str, int, str]]:
    """Writer calls made directly in notebook code, ``[(notebook, line, writer)]``.

    Notebooks stay thin: an artefact is written by a package function, never by a notebook cell,
    so this list should be empty.
    """
    folder = Path(notebooks_dir) if notebooks_dir else paths.notebooks_dir()
    found = []
    for path in sorted(folder.glob("*.ipynb")):
        code = _notebook_code(path)
        try:
            tree = ast.parse(code)
        except SyntaxError:
            for i, line in enumerate(code.splitlines(), 1):
                for writer in SAVE_FUNCTIONS:
                    if re.search(rf"\b{writer}\s*\(", line):
                        found.append((path.stem, i, writer))
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_name(node) in SAVE_FUNCTIONS:
                found.append((path.stem, node.lineno, _call_name(node)))
    return found


def notebook_calls(notebook: Path, function: str) -> bool:
    """Whether a notebook's code names ``function`` (its last dotted part) as an identifier."""
    short = function.rsplit(".", 1)[-1]
    return re.search(rf"\b{re.escape(short)}\b", _notebook_code(notebook)) is not None


# --------------------------------------------------------------------------------------------
# The registry as LaTeX (for the macros' error messages)
# --------------------------------------------------------------------------------------------
def render_artefact_map(registry: Mapping[str, Artefact] | None = None) -> str:
    """``paper/artefacts.tex``: one ``\\artefact{name}{kind}{producer}{function}`` line per artefact."""
    registry = ARTEFACTS if registry is None else registry
    lines = ["% The artefact registry (mastering.paper.ARTEFACTS) for the manuscript's error messages.",
             "% Generated by `python -m mastering.paper map`; do not edit by hand.",
             "% \\artefact{name}{kind}{who writes it}{package function}"]
    for art in registry.values():
        lines.append(f"\\artefact{{{art.name}}}{{{art.kind}}}{{{art.producer}}}{{{art.function}}}")
    return "\n".join(lines) + "\n"


def write_artefact_map(path: Path | None = None, registry: Mapping[str, Artefact] | None = None) -> Path:
    path = Path(path) if path else paths.REPO_ROOT / "paper" / "artefacts.tex"
    atomic_write_text(path, render_artefact_map(registry))
    return path


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """Something that stops the paper from being built from this run's artefacts.

    ``code`` is one of ``missing``, ``unknown``, ``kind``, ``provenance``, ``notebook``,
    ``stale``, ``profile``, ``value``, ``map``.
    """

    code: str
    artefact: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class Audit:
    """What :func:`audit` found: problems (the build must stop) and notes (worth knowing)."""
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    referenced: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def _commit_exists(repo: Path, commit: str) -> bool:
    return _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def _is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    return _git(repo, "merge-base", "--is-ancestor", ancestor, descendant).returncode == 0


def _last_change(repo: Path, rel_paths: Iterable[Path]) -> str:
    args = [p.as_posix() for p in rel_paths]
    out = _git(repo, "log", "-1", "--format=%H", "--", *args)
    return out.stdout.strip() if out.returncode == 0 else ""


def _uncommitted(repo: Path, rel_paths: Iterable[Path]) -> list[str]:
    out = _git(repo, "status", "--porcelain", "--untracked-files=no", "--", *[p.as_posix() for p in rel_paths])
    return [line[3:] for line in out.stdout.splitlines() if line.strip()]


def _how_to_make(art: Artefact, profile: str | None) -> str:
    flag = f" PROFILE={profile}" if profile and profile != "smoke" else ""
    if art.notebook is None:
        return f"`python -m mastering.paper numbers{' --profile ' + profile if profile else ''}` (make paper does it)"
    number = art.notebook.split("_", 1)[0]
    return f"`make reproduce{flag} ONLY={number}` (or all notebooks: `make reproduce{flag}`)"


def infer_profile(registry: Mapping[str, Artefact] | None = None, paper_dir: Path | None = None,
                  tex_path: TexPaths = None) -> str:
    """The profile most of the paper's notebook-made artefacts were made in (``smoke`` if none exist)."""
    registry = ARTEFACTS if registry is None else registry
    counts: collections.Counter = collections.Counter()
    for name in referenced_artefacts(tex_path):
        art = registry.get(name)
        if art is None or art.notebook is None or not art.sidecar(paper_dir).exists():
            continue
        try:
            counts[json.loads(art.sidecar(paper_dir).read_text()).get("profile")] += 1
        except (OSError, json.JSONDecodeError):
            continue
    counts.pop(None, None)
    return counts.most_common(1)[0][0] if counts else "smoke"


def audit(profile: str | None = None, *, tex_path: TexPaths = None,
          registry: Mapping[str, Artefact] | None = None, paper_dir: Path | None = None,
          repo: Path | None = None, check_map: bool = True) -> Audit:
    """Check that every artefact the paper references exists, is current and of one profile.

    The problems, by :attr:`Problem.code`: an artefact the paper references that no run produced
    (``missing``), that the registry does not know (``unknown``) or that it uses as another kind
    (``kind``); a sidecar that is absent or describes another artefact (``provenance``) or names
    another notebook (``notebook``); a ``stale`` file, whose sidecar commit is not an ancestor of
    ``HEAD`` or whose notebook or writing module changed in a later commit (``git log -1`` of them
    is not an ancestor of the sidecar's commit); files of mixed or foreign profiles (``profile``);
    ``\\genval`` keys the number file does not define (``value``); and an ``artefacts.tex`` (the
    registry as LaTeX, for the macros' error messages) out of date with :data:`ARTEFACTS` (``map``).

    Args:
        profile: the profile the paper is built for; ``None`` accepts any single profile.
        tex_path: the manuscript or manuscripts (default: ``paper/main.tex`` and
            ``paper/supplement.tex``, :func:`manuscripts`; their ``\\input`` files are read too).
        registry: default :data:`ARTEFACTS`.
        paper_dir: where the generated files are (default :func:`mastering.paths.paper_dir`).
        repo: the git repository whose history decides staleness (default the repository root).
        check_map: also require ``artefacts.tex`` beside the manuscript to match the registry.

    Returns:
        An :class:`Audit`; its ``problems`` are what :func:`check` returns.
    """
    registry = ARTEFACTS if registry is None else registry
    tex_path = manuscripts(tex_path)
    repo = Path(repo) if repo else paths.REPO_ROOT
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    for doc in tex_path:
        if not doc.exists():
            raise FileNotFoundError(f"no manuscript at {doc}")
    result = Audit()
    referenced = referenced_artefacts(tex_path)
    result.referenced = referenced
    _check_references(result, tex_path, registry)
    head = _git(repo, "rev-parse", "HEAD").stdout.strip()
    for name in sorted(referenced):
        art = registry.get(name)
        if art is not None:
            _check_artefact(result, art, repo, head, profile, paper_dir)
    _check_profiles(result, profile)
    _check_values(result, tex_path, registry, paper_dir)
    if check_map:
        _check_map(result, tex_path, registry)
    _note_unused(result, registry, referenced, paper_dir)
    return result


def _check_references(result: Audit, tex_path: TexPaths, registry: Mapping[str, Artefact]) -> None:
    """Names the manuscript uses that the registry does not know, or uses as the wrong kind."""
    add = result.problems.append
    for name, kinds in sorted(_referenced_kinds(tex_path).items()):
        art = registry.get(name)
        if art is None:
            add(Problem("unknown", name, f"the paper references {'/'.join(sorted(kinds))} '{name}', which no "
                        "notebook writes (it is not in mastering.paper.ARTEFACTS)"))
            continue
        wrong = sorted(kinds - {art.kind})
        if wrong:
            add(Problem("kind", name, f"the paper uses '{name}' as a {'/'.join(wrong)}, but it is a {art.kind} "
                        f"(written by {art.function})"))


def _check_artefact(result: Audit, art: Artefact, repo: Path, head: str, profile: str | None,
                    paper_dir: Path | None) -> None:
    """One referenced artefact: its files exist, its sidecar names it and its notebook, it is current."""
    add, name = result.problems.append, art.name
    missing = [f for f in art.files(paper_dir) if not f.exists()]
    if missing:
        where = ", ".join(str(Path(f.parent.name) / f.name) for f in missing)
        hint = ""
        if art.notebook_path is not None and not (repo / art.notebook_path).exists():
            hint = f"; {art.notebook_path} does not exist yet"
        add(Problem("missing", name, f"{art.kind} '{name}' was produced by no run ({where} missing): "
                    f"{art.producer} writes it through {art.function}; run {_how_to_make(art, profile)}{hint}"))
        return
    sidecar = art.sidecar(paper_dir)
    try:
        record = json.loads(sidecar.read_text())
    except FileNotFoundError:
        add(Problem("provenance", name, f"{art.kind} '{name}' has no provenance sidecar ({sidecar.name}): it "
                    f"was not written by {art.function}; rerun {art.producer}"))
        return
    except json.JSONDecodeError as exc:
        add(Problem("provenance", name, f"{art.kind} '{name}': unreadable sidecar {sidecar.name} ({exc})"))
        return
    if record.get("name", name) != name or record.get("kind", art.kind) != art.kind:
        add(Problem("provenance", name, f"{art.kind} '{name}': its sidecar describes "
                    f"{record.get('kind')} '{record.get('name')}'"))
    if art.notebook is not None and record.get("notebook") != art.notebook:
        made_by = record.get("notebook") or "no notebook (run by hand)"
        add(Problem("notebook", name, f"{art.kind} '{name}' was written by {made_by}, but {art.notebook} is the "
                    f"notebook that makes it; rerun {_how_to_make(art, profile)}"))
    result.profiles[name] = str(record.get("profile"))
    _check_commit(result, art, record, repo, head, profile)


def _check_map(result: Audit, tex_path: TexPaths, registry: Mapping[str, Artefact]) -> None:
    """``artefacts.tex`` beside the manuscript must match the registry."""
    map_path = manuscripts(tex_path)[0].parent / "artefacts.tex"
    current = map_path.read_text() if map_path.exists() else ""
    if current != render_artefact_map(registry):
        result.problems.append(Problem("map", "artefacts.tex", f"{map_path} is out of date with "
                                       "mastering.paper.ARTEFACTS; run `python -m mastering.paper map`"))


def _note_unused(result: Audit, registry: Mapping[str, Artefact], referenced: Mapping[str, str],
                 paper_dir: Path | None) -> None:
    """Notes on registered artefacts the paper does not use and generated files no artefact names."""
    unreferenced = sorted(set(registry) - set(referenced))
    if unreferenced:
        result.notes.append("registered but not used by the paper: " + ", ".join(unreferenced))
    known = {f.name for art in registry.values() for f in art.files(paper_dir)}
    root = Path(paper_dir) if paper_dir else paths.paper_dir()
    orphans = sorted(p.name for sub in ("figures", "tables") for p in (root / sub).glob("*")
                     if p.suffix in (".pdf", ".png", ".tex") and p.name not in known and not p.name.startswith("."))
    if orphans:
        result.notes.append("generated files that no registered artefact names (left from an older run?): "
                            + ", ".join(orphans))


def _check_commit(result: Audit, art: Artefact, record: Mapping[str, Any], repo: Path, head: str,
                  profile: str | None) -> None:
    add = result.problems.append
    commit = str(record.get("commit", "unknown"))
    base = commit.split("+", 1)[0]
    if base in ("", "unknown"):
        add(Problem("provenance", art.name, f"{art.kind} '{art.name}' records no commit; rerun {art.producer}"))
        return
    if not _commit_exists(repo, base):
        add(Problem("stale", art.name, f"{art.kind} '{art.name}' was made at commit {base[:10]}, which this "
                    f"repository does not have; rerun {_how_to_make(art, profile)}"))
        return
    if head and not _is_ancestor(repo, base, head):
        add(Problem("stale", art.name, f"{art.kind} '{art.name}' was made at commit {base[:10]}, which is not an "
                    f"ancestor of HEAD ({head[:10]}); rerun {_how_to_make(art, profile)}"))
        return
    sources = [p for p in (art.notebook_path, art.module_path) if p is not None]
    changed = _last_change(repo, sources)
    if changed and not _is_ancestor(repo, changed, base):
        what = " or ".join(p.as_posix() for p in sources)
        add(Problem("stale", art.name, f"{art.kind} '{art.name}' is stale: {what} changed in commit {changed[:10]}, "
                    f"after the artefact was made at {base[:10]}; rerun {_how_to_make(art, profile)}"))
        return
    if commit.endswith("+dirty"):
        result.notes.append(f"{art.name}: made from a working tree with uncommitted changes (commit {base[:10]}+dirty)")
    pending = _uncommitted(repo, sources)
    if pending:
        result.notes.append(f"{art.name}: {', '.join(pending)} has uncommitted changes that the artefact may not reflect")


def _check_profiles(result: Audit, profile: str | None) -> None:
    groups: dict[str, list[str]] = collections.defaultdict(list)
    for name, prof in sorted(result.profiles.items()):
        groups[prof].append(name)
    if profile is not None:
        for prof, names in sorted(groups.items()):
            if prof != profile:
                result.problems.append(Problem("profile", ",".join(names), f"made in profile '{prof}', but the paper is "
                                               f"built for '{profile}': {', '.join(names)}"))
    elif len(groups) > 1:
        detail = "; ".join(f"{prof}: {', '.join(names)}" for prof, names in sorted(groups.items()))
        result.problems.append(Problem("profile", "*", f"the paper's artefacts mix profiles ({detail}); rerun "
                                       "`make reproduce PROFILE=...` so that all come from one profile"))


def _check_values(result: Audit, tex_path: TexPaths, registry: Mapping[str, Artefact], paper_dir: Path | None) -> None:
    for name, keys in sorted(referenced_values(tex_path).items()):
        art = registry.get(name)
        if art is None or art.kind != "numbers":
            continue
        path = art.files(paper_dir)[0]
        if not path.exists():
            continue  # reported as missing
        defined = read_numbers(path)
        for key in sorted(keys - set(defined)):
            result.problems.append(Problem("value", name, f"the paper prints \\genval{{{name}}}{{{key}}}, but "
                                           f"{path.name} (written by {art.function}) defines no '{key}'"))


def check(profile: str | None = None, **kwargs: Any) -> list[Problem]:
    """The problems that stop ``make paper`` (see :func:`audit` for the arguments)."""
    return audit(profile, **kwargs).problems


# --------------------------------------------------------------------------------------------
# Numbers for the text
# --------------------------------------------------------------------------------------------
def _default(func, arg: str) -> Any:
    return inspect.signature(func).parameters[arg].default


def profile_scope(profile: str) -> str:
    """The limitations sentence about what the results of ``profile`` are evidence of.

    Built from the registry's sizes (never typed per run): ``smoke`` is a pipeline check; a
    profile narrower or shorter than ``full`` reports what its budget reaches; ``full`` is the
    design's recipe.
    """
    p, full = get_profile(profile), get_profile("full")
    train = p["train"]
    if profile == "smoke":
        return ("Results of the smoke profile are checks of the pipeline, not evidence about the methods; "
                "the cpu profile gives this paper's numbers and the full profile is the design's recipe")
    if profile == "full":
        return "The results are those of the full profile, the design's recipe"
    narrow = bool(train["model"]) and train["model"] != full["train"]["model"]
    model = "a narrower model than the design's" if narrow else "the design's model"
    return (f"The results are those of the {profile} profile: all the real music of "
            f"{len(p['debian_packages'])} packages, but {model}, trained for {train['epochs']} epochs of "
            f"{train['data']['train_items']} pairs of {train['segment_seconds']:g} s on a {p['device'].upper()} "
            f"(the full profile: {full['train']['epochs']} epochs of {full['train']['data']['train_items']} pairs "
            f"of {full['train']['segment_seconds']:g} s); they show what that budget reaches, not the limit of the methods")


def method_numbers(profile: str = "smoke") -> dict[str, Any]:
    """Constants of the method that the manuscript quotes, read from the code (never typed by hand).

    Covers the EQ parameter ranges, band counts and latent size of each phase, the encoder's
    layout, the loss weights and STFT resolutions, the mastering targets, the SAFE layout, the
    parameter counts of the full-width models beside the design's, and the sizes of ``profile``.
    """

    p = get_profile(profile)
    train, vae = p["train"], p["vae"]["train"]
    f_lo, f_hi, _ = eq.PARAM_RANGES["freq_hz"]
    g_lo, g_hi, _ = eq.PARAM_RANGES["gain_db"]
    q_lo, q_hi, _ = eq.PARAM_RANGES["q"]
    values: dict[str, Any] = {
        "profile": profile,
        "profile_note": profile_note(profile),
        "profile_scope": profile_scope(profile),
        "commit": git_commit(short=True),
        "sample_rate_khz": p["sample_rate"] / 1000,
        "eq_freq_min_hz": f_lo, "eq_freq_max_khz": f_hi / 1000, "eq_gain_max_db": g_hi, "eq_gain_min_db": g_lo,
        "eq_q_min": q_lo, "eq_q_max": q_hi,
        "enc_stem_kernel": _default(enc.AudioEncoder, "stem_kernel"),
        "enc_stem_stride": _default(enc.AudioEncoder, "stem_stride"),
        "enc_kernel": _default(enc.AudioEncoder, "kernel_size"),
        "enc_dilations": ", ".join(str(d) for d in _default(enc.AudioEncoder, "dilations")),
        "enc_channels_min": _default(enc.AudioEncoder, "stem_channels"),
        "enc_channels_max": max(_default(enc.AudioEncoder, "block_channels")),
        "latent_dim": _default(enc.AudioEncoder, "latent_dim"),
        "stft_sizes": "/".join(str(n) for n in DEFAULT_FFT_SIZES),
        "stft_scales": len(DEFAULT_FFT_SIZES),
        "w_stft": _default(MasteringLoss, "w_stft"), "w_aweighted": _default(MasteringLoss, "w_aweighted"),
        "w_loudness": _default(MasteringLoss, "w_loudness"), "w_params": _default(MasteringLoss, "w_params"),
        "target_lufs": _default(master_file, "target_lufs"), "true_peak_dbtp": _default(master_file, "true_peak_dbtp"),
        "highpass_hz": _default(master_file, "highpass_hz"), "highpass_order": HIGHPASS_ORDER,
        "stream_target_max_lufs": max(STREAMING_TARGETS_LUFS.values()),
        "stream_target_min_lufs": min(STREAMING_TARGETS_LUFS.values()),
        "safe_params": len(safedb.PARAM_NAMES), "safe_bands": len(safedb.BAND_KINDS),
        "demaster_stages": len(demaster.STAGE_ORDER),
        "segment_s": p["segment_seconds"], "debian_packages": len(p["debian_packages"]),
        "test_packages": ", ".join(p["heldout_packages"]["test"]),
        "valid_packages": ", ".join(p["heldout_packages"]["valid"]),
        "train_segment_s": train["segment_seconds"], "train_batch": train["batch_size"],
        "train_epochs": train["epochs"], "train_lr": train["lr"],
        "train_items": train["data"]["train_items"], "valid_items": train["data"]["valid_items"],
        "rating_min": RATING_MIN, "rating_max": RATING_MAX,
        "vae_latent_dim": vae["latent_dim"], "vae_beta": vae["beta"], "vae_epochs": vae["epochs"],
    }
    for phase, spec in mm.PHASES.items():
        values[f"bands_{phase}"] = spec["num_bands"]
        counts = mm.parameter_counts(phase)
        values[f"params_{phase}_m"] = counts["total"] / 1e6
        values[f"design_params_{phase}_m"] = mm.DESIGN_PARAMETERS[phase] / 1e6
        values[f"params_{phase}_decoder_k"] = counts["decoder"] / 1e3
        if phase == "1b":
            values.update({"params_encoder_m": counts["encoder"] / 1e6, "params_residual_m": counts["residual"] / 1e6,
                           "params_dynamics_k": counts["dynamics"] / 1e3})
    return values


_METHOD_DIGITS = {"sample_rate_khz": 1, "eq_freq_min_hz": 0, "eq_freq_max_khz": 0, "eq_gain_max_db": 0,
                  "eq_gain_min_db": 0, "eq_q_min": 1, "eq_q_max": 0, "w_stft": 1, "w_aweighted": 1,
                  "w_loudness": 2, "w_params": 2, "target_lufs": 0, "true_peak_dbtp": 0, "highpass_hz": 0,
                  "stream_target_max_lufs": 0, "stream_target_min_lufs": 0, "segment_s": 1,
                  "train_segment_s": 1, "train_lr": 4, "vae_beta": 3,
                  "params_1a_decoder_k": 0, "params_1b_decoder_k": 0, "params_1c_decoder_k": 0, "params_dynamics_k": 0}


def write_method_numbers(profile: str | None = None) -> Path:
    """Write ``numbers_method.tex`` from :func:`method_numbers` (``make paper`` runs it).

    ``profile`` defaults to the one the paper's artefacts were made in (:func:`infer_profile`).
    """
    profile = profile or infer_profile()
    values = method_numbers(profile)
    digits = {k: _METHOD_DIGITS.get(k, 2) for k in values}
    return save_numbers("method", values, profile, digits=digits)


# --------------------------------------------------------------------------------------------
# README tables
# --------------------------------------------------------------------------------------------
def _fmt_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def readme_tables(registry: Mapping[str, Artefact] | None = None, build_dir: Path | None = None) -> str:
    """Markdown for the README: the figure/table -> notebook map and the measured notebook timings.

    Timings are read from ``build/notebooks/<profile>/timings.json`` (written by
    :func:`mastering.notebooks.run_all`); a profile that was never run shows ``not run``, and a
    record's optional ``device`` field (e.g. ``"GPU"``) is shown beside its time.
    """
    registry = ARTEFACTS if registry is None else registry
    build_dir = Path(build_dir) if build_dir else paths.build_dir()
    by_nb: dict[str, list[Artefact]] = collections.defaultdict(list)
    for art in registry.values():
        by_nb[art.notebook or BUILD_PRODUCER].append(art)
    lines = ["| notebook | figures | tables | numbers | package module |", "|---|---|---|---|---|"]
    for nb in sorted(by_nb, key=lambda k: (k == BUILD_PRODUCER, k)):
        arts = by_nb[nb]
        cell = {kind: ", ".join(f"`{a.name}`" for a in arts if a.kind == kind) or "" for kind in KINDS}
        modules = ", ".join(sorted({f"`{a.module}`" for a in arts}))
        label = f"`{nb}`" if nb != BUILD_PRODUCER else "`make paper`"
        lines.append(f"| {label} | {cell['figure']} | {cell['table']} | {cell['numbers']} | {modules} |")
    timings = {}
    for prof in PROFILES:
        path = build_dir / "notebooks" / prof / "timings.json"
        timings[prof] = json.loads(path.read_text()) if path.exists() else {}
    notebooks = sorted({nb for nb in by_nb if nb != BUILD_PRODUCER} | {k for t in timings.values() for k in t})
    lines += ["", "| notebook | " + " | ".join(f"{p}" for p in PROFILES) + " | measured on |",
              "|---|" + "---|" * len(PROFILES) + "---|"]
    for nb in notebooks:
        cells, dates = [], []
        for prof in PROFILES:
            rec = timings[prof].get(nb)
            device = f" ({rec['device']})" if rec and rec.get("device") else ""
            cells.append(_fmt_seconds(float(rec["seconds"])) + device if rec else "not run")
            if rec:
                dates.append(f"{prof} {rec.get('date', '')}".strip())
        lines.append(f"| `{nb}` | " + " | ".join(cells) + f" | {', '.join(dates)} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def _print_audit(result: Audit, profile: str | None, out=None) -> None:
    out = out or sys.stdout
    shown = profile or (", ".join(sorted(set(result.profiles.values()))) or "none yet")
    print(f"paper check: {len(result.referenced)} artefact(s) referenced by the paper and its supplement, "
          f"profile {shown}", file=out)
    order = ["unknown", "missing", "kind", "provenance", "notebook", "stale", "profile", "value", "map"]
    problems = sorted(result.problems, key=lambda p: (order.index(p.code) if p.code in order else 99, p.artefact))
    for prob in problems:
        print(f"  {prob.code.upper():<10} {prob.message}", file=out)
    for note in result.notes:
        print(f"  note       {note}", file=out)
    missing = [p.artefact for p in result.problems if p.code in ("missing", "unknown")]
    if missing:
        print(f"\nThe paper cannot be built: no notebook produced {', '.join(sorted(missing))}.", file=out)
    if result.problems:
        print(f"{len(result.problems)} problem(s): fix them (usually `make reproduce`) before `make paper`.", file=out)
    else:
        print("ok: every figure, table and number the paper uses exists, is current and of one profile.", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mastering.paper", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    chk = sub.add_parser("check", help="check the paper's artefacts; non-zero exit on problems")
    chk.add_argument("--profile", choices=sorted(PROFILES), help="require this profile (default: any single one)")
    num = sub.add_parser("numbers", help="write numbers_method.tex (constants of the code the text quotes)")
    num.add_argument("--profile", choices=sorted(PROFILES), help="default: the profile of the existing artefacts")
    sub.add_parser("map", help="write paper/artefacts.tex from the registry")
    sub.add_parser("list", help="list the registry and which files exist")
    sub.add_parser("readme", help="print the README's figure -> notebook map and timing table")
    args = parser.parse_args(argv)
    if args.cmd == "check":
        result = audit(args.profile)
        _print_audit(result, args.profile)
        return 1 if result.problems else 0
    if args.cmd == "numbers":
        path = write_method_numbers(args.profile)
        print(f"wrote {path}")
        return 0
    if args.cmd == "map":
        print(f"wrote {write_artefact_map()}")
        return 0
    if args.cmd == "list":
        used = referenced_artefacts()
        for art in ARTEFACTS.values():
            exists = "ok     " if all(f.exists() for f in art.files()) else "missing"
            print(f"{exists} {art.kind:<8} {art.name:<28} {art.producer:<28} {art.function}"
                  f"{'' if art.name in used else '  (not in the paper)'}")
        return 0
    print(readme_tables(), end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
