"""The paper's artefact registry, the number-file writer, the pre-build check and the paper's
shape: at most ten pages, eight figures and four tables, the rest in the supplement (TeX only
for the guarded page-count test)."""

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mastering import figures, paper
from mastering.paper import ARTEFACTS, Artefact
from mastering.profiles import PROFILES

REPO = paper.paths.REPO_ROOT
MAIN_TEX = REPO / "paper" / "main.tex"
SUPPLEMENT_TEX = REPO / "paper" / "supplement.tex"
MAX_FIGURES, MAX_TABLES, MAX_PAGES = 8, 4, 10


# ----------------------------------------------------------------------------- the registry vs the code
def test_every_save_call_in_the_package_is_registered_with_its_function():
    calls = paper.scan_save_calls()
    assert calls, "the scan found no save_figure/save_table calls at all"
    dynamic = [f"{c.path.relative_to(REPO)}:{c.lineno}" for c in calls if c.name is None and c.pattern is None]
    assert not dynamic, f"artefact names must be literals, parameter defaults or f-strings: {dynamic}"
    for call in calls:
        where = f"{call.path.relative_to(REPO)}:{call.lineno}"
        mine = [a for a in ARTEFACTS.values() if call.writes(a.name)]
        assert mine, f"{where} writes {call.kind} '{call.name or call.pattern}', which is not in mastering.paper.ARTEFACTS"
        for art in mine:
            assert art.kind == call.kind, f"{where}: '{art.name}' is written as a {call.kind}, registered as a {art.kind}"
            assert art.function == call.function, f"{where}: '{art.name}' is written by {call.function}, registered as {art.function}"
    names = [c.name for c in calls if c.name is not None]
    twice = sorted({n for n in names if names.count(n) > 1})
    assert not twice, f"artefacts written by more than one call: {twice}"


def test_every_registered_artefact_is_written_by_its_function():
    calls = paper.scan_save_calls()
    for art in ARTEFACTS.values():
        assert any(c.function == art.function and c.writes(art.name) for c in calls), \
            f"{art.kind} '{art.name}': {art.function} does not write it"
        assert (REPO / art.module_path).exists(), art.module_path


def test_notebooks_write_artefacts_only_through_package_functions():
    assert paper.scan_notebook_save_calls() == []


def test_existing_notebooks_call_the_functions_registered_for_them():
    for art in ARTEFACTS.values():
        if art.notebook_path is None or not (REPO / art.notebook_path).exists():
            continue
        assert paper.notebook_calls(REPO / art.notebook_path, art.function), (
            f"{art.notebook_path} never calls {art.function}, which writes {art.kind} '{art.name}'")


def test_the_manuscript_references_only_registered_artefacts_of_the_right_kind():
    assert paper.manuscripts() == [MAIN_TEX, SUPPLEMENT_TEX]
    referenced = paper.referenced_artefacts()
    assert {"method", "literature", "lit_eq_recovery", "lit_loudness_real_tracks", "lit_phase_invariance"} <= set(referenced)
    for name, kind in referenced.items():
        assert name in ARTEFACTS, f"the paper or its supplement references '{name}', which no notebook writes"
        assert ARTEFACTS[name].kind == kind, f"'{name}' is used as a {kind} but is a {ARTEFACTS[name].kind}"


def test_the_committed_artefact_map_matches_the_registry():
    assert (REPO / "paper" / "artefacts.tex").read_text() == paper.render_artefact_map(), \
        "run `python -m mastering.paper map`"


def test_method_numbers_define_every_method_value_the_text_prints():
    used = paper.referenced_values()["method"]
    values = paper.method_numbers("smoke")
    assert used - set(values) == set(), f"the text prints method numbers the code does not provide: {used - set(values)}"
    assert values["profile"] == "smoke"
    assert values["eq_gain_max_db"] > 0 > values["eq_gain_min_db"]
    assert values["bands_1c"] > values["bands_1a"]
    assert values["params_1b_m"] > values["params_1a_m"]
    for key, value in values.items():
        figures.format_value(value, 2)  # every value is printable (finite, supported type)


def test_profile_scope_follows_the_registry():
    """The limitations sentence calls smoke a pipeline check and reports another profile's budget
    from the registry, so a cpu-built paper never calls its own numbers a smoke check."""
    assert "checks of the pipeline" in paper.profile_scope("smoke")
    cpu = paper.profile_scope("cpu")
    assert "checks of the pipeline" not in cpu
    train = PROFILES["cpu"]["train"]
    assert f"{train['epochs']} epochs of {train['data']['train_items']} pairs" in cpu
    assert "narrower model" in cpu
    assert paper.method_numbers("cpu")["profile_scope"] == cpu


# ----------------------------------------------------------------------------- ten pages plus a supplement
_FLOAT_ENV = re.compile(r"\\begin\{(figure|table)\*?\}")
_CAPTION = re.compile(r"\\caption\{")


def _floats(tex):
    """``{figure: [names], table: [names]}`` of a document and its inputs: generated figures and
    tables (each ``\\genfigure`` / ``\\gentable`` is one float) plus hand-made float environments."""
    sources = [paper._COMMENT.sub("", p.read_text()) for p in paper._tex_sources(tex) if p.name != "preamble.tex"]
    found = {"figure": [], "table": []}
    for text in sources:
        for macro, name in paper._REF.findall(text):
            if macro in ("genfigure", "gentable") and paper._WORD.match(name.strip()):
                found["figure" if macro == "genfigure" else "table"].append(name.strip())
        hand = _FLOAT_ENV.findall(text)
        found["table"] += ["(hand-made table)"] * hand.count("table")
    return found


def test_the_paper_has_at_most_eight_figures_and_four_tables():
    floats = _floats(MAIN_TEX)
    assert 0 < len(floats["figure"]) <= MAX_FIGURES, f"main.tex shows {len(floats['figure'])} figures: {floats['figure']}"
    assert 0 < len(floats["table"]) <= MAX_TABLES, f"main.tex shows {len(floats['table'])} tables: {floats['table']}"
    # the central claims: mastering against baselines, loudness compliance, semantic EQ, listening-test power
    assert {"eval_metrics", "semantic_eq_comparison", "listening_power_simulated"} <= set(floats["table"])


def test_the_supplement_holds_every_other_figure_and_table_once():
    main, supplement = _floats(MAIN_TEX), _floats(SUPPLEMENT_TEX)
    for kind in ("figure", "table"):
        both = sorted(set(main[kind]) & set(supplement[kind]))
        assert not both, f"{kind}s printed in the paper and again in the supplement: {both}"
        for doc, names in (("main.tex", main[kind]), ("supplement.tex", supplement[kind])):
            twice = sorted({n for n in names if names.count(n) > 1})
            assert not twice, f"{doc} prints these {kind}s twice: {twice}"
    assert len(supplement["figure"]) >= 10 and len(supplement["table"]) >= 10
    text = SUPPLEMENT_TEX.read_text()
    assert "\\documentclass" in text and "\\input{preamble}" in text, "the supplement is its own document on the shared preamble"
    assert "\\input{preamble}" in MAIN_TEX.read_text()


def test_make_paper_builds_the_paper_and_the_supplement():
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\npaper:", 1)[1].split("\n\n", 1)[0]
    assert "mastering.paper check" in recipe
    assert "supplement" in recipe and "main" in recipe and "latexmk" in recipe
    assert "paper/supplement.pdf" in (REPO / ".gitignore").read_text()


def test_every_figure_caption_names_the_profile_and_what_to_look_at():
    for tex in (MAIN_TEX, SUPPLEMENT_TEX):
        for source in paper._tex_sources(tex):
            text = paper._COMMENT.sub("", source.read_text())
            for block in re.findall(r"\\begin\{figure\*?\}.*?\\end\{figure\*?\}", text, re.S):
                label = re.search(r"\\label\{([^}]*)\}", block)
                where = f"{source.name}: {label.group(1) if label else block[:60]}"
                assert "\\runprofile" in block, f"{where}: the caption does not name the profile (\\runprofile)"
                assert "Look at:" in " ".join(block.split()), f"{where}: the caption does not say what to look at"
    preamble = (REPO / "paper" / "preamble.tex").read_text()
    assert re.search(r"\\newcommand\{\\runprofile\}\{[^\n]*\\M\{profile_note\}", preamble)


def test_floats_come_before_the_conclusion():
    text = paper._COMMENT.sub("", MAIN_TEX.read_text())
    barrier, conclusion = text.find("\\FloatBarrier"), text.find("\\input{sections/conclusion}")
    assert 0 <= barrier < conclusion, "main.tex needs \\FloatBarrier before the conclusion"
    conclusion_text = (REPO / "paper" / "sections" / "conclusion.tex").read_text()
    assert not re.search(r"\\(genfigure|gentable|begin\{(figure|table))", conclusion_text)


def _latex_ready():
    tools = all(shutil.which(t) for t in ("latexmk", "pdflatex", "bibtex", "pdfinfo"))
    made = all(f.exists() for name in paper.referenced_artefacts(MAIN_TEX) if name in ARTEFACTS
               for f in ARTEFACTS[name].files())
    return tools and made


@pytest.mark.skipif(not _latex_ready(), reason="needs latexmk, pdflatex, bibtex, pdfinfo and the artefacts of a run")
def test_the_rendered_paper_has_at_most_ten_pages_and_no_float_after_the_conclusion(tmp_path):
    work = tmp_path / "paper"
    built = (".pdf", ".aux", ".log", ".fls", ".fdb_latexmk", ".bbl", ".blg", ".out")
    shutil.copytree(REPO / "paper", work, ignore=lambda folder, names: [  # the last build's outputs, not the figures
        n for n in names if Path(folder) == REPO / "paper" and n.endswith(built)])
    run = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
                         cwd=work, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (work / "main.log").read_text()[-3000:]
    info = subprocess.run(["pdfinfo", str(work / "main.pdf")], capture_output=True, text=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    assert pages <= MAX_PAGES, f"main.pdf has {pages} pages"
    labels = dict(re.findall(r"\\newlabel\{([^}]*)\}\{\{[^}]*\}\{(\d+)\}", (work / "main.aux").read_text()))
    conclusion = int(labels["sec:conclusion"])
    late = {k: v for k, v in labels.items() if k.startswith(("fig:", "tab:")) and int(v) > conclusion}
    assert not late, f"floats after the conclusion (page {conclusion}): {late}"


# ----------------------------------------------------------------------------- number files (mastering.figures)
def test_format_value_prints_numbers_and_escapes_text():
    assert figures.format_value(-1.234, 2) == r"\ensuremath{-}1.23"
    assert figures.format_value(-0.0001, 2) == "0.00"  # no minus on a value that rounds to zero
    assert figures.format_value(1234567) == r"1\,234\,567"
    assert figures.format_value(4096) == "4096"
    assert figures.format_value(12345.678, 1) == r"12\,345.7"
    assert figures.format_value(True) == "yes" and figures.format_value(False) == "no"
    assert figures.format_value("50% of A&B_c #1 {x} ~ ^ \\ <>") == (
        r"50\% of A\&B\_c \#1 \{x\} \textasciitilde{} \textasciicircum{} \textbackslash{} \textless{}\textgreater{}")
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="non-finite"):
            figures.format_value(bad)
    with pytest.raises(ValueError, match="type"):
        figures.format_value([1, 2])


def test_save_numbers_writes_macros_with_provenance(paper_dir):
    values = {"gain_db": -3.456, "tracks": 12, "label": "Rock & Roll_1 (50%)", "ok": True}
    path = figures.save_numbers("demo", values, "smoke", digits={"gain_db": 1})
    assert path == paper_dir / "tables" / "numbers_demo.tex"
    text = path.read_text()
    assert "% profile: smoke" in text and "% commit: " in text and "do not edit" in text
    assert figures.read_numbers(path) == {"gain_db": r"\ensuremath{-}3.5", "tracks": "12",
                                          "label": r"Rock \& Roll\_1 (50\%)", "ok": "yes"}
    # every macro line is a balanced definition that ends without a spurious space
    for line in text.splitlines():
        if line.startswith("\\expandafter"):
            assert line.endswith("}%") and line.count("{") == line.count("}")
    sidecar = json.loads((paper_dir / "tables" / "numbers_demo.tex.json").read_text())
    assert sidecar["kind"] == "numbers" and sidecar["name"] == "demo" and sidecar["profile"] == "smoke"
    assert sidecar["values"]["gain_db"] == pytest.approx(-3.456) and sidecar["values"]["tracks"] == 12


@pytest.mark.parametrize("name, values, match", [
    ("Bad", {"a": 1}, "numbers name"),
    ("demo", {}, "no values"),
    ("demo", {"bad-key": 1}, "key 'bad-key'"),
    ("demo", {"1st": 1}, "key '1st'"),
    ("demo", {"x": math.nan}, "key 'x'.*non-finite"),
])
def test_save_numbers_rejects_bad_input(paper_dir, name, values, match):
    with pytest.raises(ValueError, match=match):
        figures.save_numbers(name, values, "smoke")
    assert not (paper_dir / "tables" / f"numbers_{name}.tex").exists()


# ----------------------------------------------------------------------------- reading the manuscript
def test_referenced_artefacts_follows_inputs_and_ignores_comments(tmp_path):
    (tmp_path / "sections").mkdir()
    (tmp_path / "main.tex").write_text(
        "\\loadnumbers{nums}\n% \\genfigure{commented_out}\n\\input{sections/a}\n\\input{tables/generated}\n"
        "\\newcommand{\\N}{\\genval{other}}\n\\newcommand\\Nx{\\genval{nums}}\n"
        "\\genfigure[width=0.5\\textwidth]{fig_a} 50\\% done % \\gentable{also_commented}\n")
    (tmp_path / "sections" / "a.tex").write_text("\\gentable*{wide_tab}\\gentable{tab_b}\n"
                                                 "value \\genval{nums}{gain_db} and \\genval{other}{x}, \\N{y}, \\N {z}, \\Nx{q}\n")
    assert paper.referenced_artefacts(tmp_path / "main.tex") == {
        "nums": "numbers", "fig_a": "figure", "wide_tab": "table", "tab_b": "table", "other": "numbers"}
    assert paper.referenced_values(tmp_path / "main.tex") == {"nums": {"gain_db", "q"}, "other": {"x", "y", "z"}}


def test_scan_finds_writer_calls_and_their_functions(tmp_path):
    pkg = tmp_path / "mastering"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "rep.py").write_text(
        "from ..figures import save_figure, save_table\nfrom .. import figures\n"
        "def fig_a(fig, profile):\n    return save_figure(fig, 'fig_a', profile)\n"
        "class R:\n    def tab(self, body, p):\n        return save_table(body, name='tab_b', profile=p)\n"
        "def nums(p):\n    figures.save_numbers('nums', {'x': 1}, p)\n"
        "def dyn(fig, p, k):\n    save_figure(fig, f'fig_{k}', p)\n"
        "def by_default(body, p, name='tab_c'):\n    return save_table(body, name, p)\n"
        "def per_phase(fig, p, phase):\n    return save_figure(fig, f'phase{phase}_curves', p)\n"
        "def no_default(body, p, name):\n    return save_table(body, name, p)\n")
    found = paper.scan_save_calls(pkg)
    calls = {(c.name, c.pattern, c.kind, c.function) for c in found}
    assert calls == {("fig_a", "fig_a", "figure", "mastering.sub.rep.fig_a"),
                     ("tab_b", "tab_b", "table", "mastering.sub.rep.R.tab"),
                     ("nums", "nums", "numbers", "mastering.sub.rep.nums"),
                     (None, "fig_(.+)", "figure", "mastering.sub.rep.dyn"),
                     ("tab_c", "tab_c", "table", "mastering.sub.rep.by_default"),
                     (None, None, "table", "mastering.sub.rep.no_default"),
                     (None, "phase(.+)_curves", "figure", "mastering.sub.rep.per_phase")}
    per_phase = next(c for c in found if c.function == "mastering.sub.rep.per_phase")
    assert per_phase.name is None and per_phase.writes("phase1a_curves") and per_phase.writes("phase1c_curves")
    assert not per_phase.writes("phase1a_curves_old") and not per_phase.writes("fig_a")
    assert next(c for c in found if c.name == "fig_a").writes("fig_a")


def test_notebook_scan_flags_direct_writes(tmp_path):
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": ["%matplotlib inline\n", "from mastering.figures import save_figure\n", "save_figure(fig, 'x', 'smoke')\n"]}
    (tmp_path / "01_x.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert paper.scan_notebook_save_calls(tmp_path) == [("01_x", 3, "save_figure")]


def test_artefact_validates_its_declaration():
    with pytest.raises(ValueError, match="kind"):
        Artefact("x", "plot", "01_a", "mastering.a.f")
    with pytest.raises(ValueError, match="notebook"):
        Artefact("x", "figure", "literature", "mastering.a.f")
    with pytest.raises(ValueError, match="name"):
        Artefact("X-1", "figure", "01_a", "mastering.a.f")
    with pytest.raises(ValueError, match="twice"):
        paper._declare(Artefact("x", "figure", "01_a", "mastering.a.f"), Artefact("x", "table", "01_a", "mastering.a.g"))


# ----------------------------------------------------------------------------- the check, in a scratch repository
def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


REGISTRY = paper._declare(
    Artefact("demo_fig", "figure", "01_demo", "mastering.demo.fig_demo"),
    Artefact("demo_tab", "table", "02_other", "mastering.other.table_other"),
    Artefact("demo", "numbers", "01_demo", "mastering.demo.numbers_demo"),
    Artefact("unused_fig", "figure", "01_demo", "mastering.demo.fig_unused"),
)


@pytest.fixture()
def scratch(tmp_path):
    """A git repository with two notebooks, two modules and a manuscript using three artefacts."""
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "mastering").mkdir()
    (repo / "paper").mkdir()
    for nb in ("01_demo", "02_other"):
        (repo / "notebooks" / f"{nb}.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                                                     "nbformat_minor": 5}))
    (repo / "mastering" / "demo.py").write_text("VERSION = 1\n")
    (repo / "mastering" / "other.py").write_text("VERSION = 1\n")
    (repo / "paper" / "main.tex").write_text("\\loadnumbers{demo}\n\\input{sections}\n")
    (repo / "paper" / "sections.tex").write_text("\\genfigure{demo_fig}\n\\gentable*{demo_tab}\nx = \\genval{demo}{x}\n")
    paper.write_artefact_map(repo / "paper" / "artefacts.tex", REGISTRY)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "start")
    return repo


def _commit(repo, message):
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-am", message)
    return _git(repo, "rev-parse", "HEAD")


def _make(repo, name, commit=None, profile="smoke", notebook=None, keys=("x",)):
    art = REGISTRY[name]
    out = repo / "generated"
    for f in art.files(out):
        f.parent.mkdir(parents=True, exist_ok=True)
        if art.kind == "numbers":
            f.write_text("".join(f"\\expandafter\\def\\csname genval@{name}@{k}\\endcsname{{1}}%\n" for k in keys))
        else:
            f.write_text("generated")
    record = {"profile": profile, "commit": commit or _git(repo, "rev-parse", "HEAD"), "date": "2025-01-01",
              "notebook": art.notebook if notebook is None else notebook, "kind": art.kind, "name": name}
    art.sidecar(out).write_text(json.dumps(record))


def _audit(repo, profile=None):
    return paper.audit(profile, tex_path=repo / "paper" / "main.tex", registry=REGISTRY,
                       paper_dir=repo / "generated", repo=repo)


def _codes(result):
    return sorted((p.code, p.artefact) for p in result.problems)


def test_check_passes_when_everything_is_current(scratch):
    for name in ("demo_fig", "demo_tab", "demo"):
        _make(scratch, name)
    result = _audit(scratch, "smoke")
    assert result.problems == []
    assert any("unused_fig" in note for note in result.notes)
    assert paper.check("smoke", tex_path=scratch / "paper" / "main.tex", registry=REGISTRY,
                       paper_dir=scratch / "generated", repo=scratch) == []


def test_check_names_missing_artefacts_and_their_notebooks(scratch):
    _make(scratch, "demo")
    result = _audit(scratch)
    assert _codes(result) == [("missing", "demo_fig"), ("missing", "demo_tab")]
    message = next(str(p) for p in result.problems if p.artefact == "demo_fig")
    assert "notebook 01_demo" in message and "mastering.demo.fig_demo" in message and "ONLY=01" in message
    (scratch / "generated" / "figures" / "demo_fig.pdf").parent.mkdir(parents=True, exist_ok=True)
    (scratch / "generated" / "figures" / "demo_fig.pdf").write_text("pdf without its png")
    assert "demo_fig.png missing" in str(next(p for p in _audit(scratch).problems if p.artefact == "demo_fig"))


def test_check_flags_artefacts_made_before_their_notebook_or_module_changed(scratch):
    for name in ("demo_fig", "demo_tab", "demo"):
        _make(scratch, name)
    (scratch / "mastering" / "demo.py").write_text("VERSION = 2\n")
    changed = _commit(scratch, "change the demo module")
    result = _audit(scratch)
    assert _codes(result) == [("stale", "demo"), ("stale", "demo_fig")]
    assert changed[:10] in str(result.problems[0]) and "mastering/demo.py" in str(result.problems[0])
    # remade at the new commit: current again; then a notebook-only change makes 02's table stale
    for name in ("demo_fig", "demo"):
        _make(scratch, name)
    nb = scratch / "notebooks" / "02_other.ipynb"
    nb.write_text(nb.read_text().replace('"cells": []', '"cells": [{"cell_type": "markdown", "metadata": {}, "source": "x"}]'))
    _commit(scratch, "edit notebook 02")
    assert _codes(_audit(scratch)) == [("stale", "demo_tab")]


def test_check_flags_commits_outside_the_history(scratch):
    base = _git(scratch, "rev-parse", "HEAD")
    _git(scratch, "checkout", "-q", "-b", "elsewhere")
    (scratch / "mastering" / "other.py").write_text("VERSION = 3\n")
    side = _commit(scratch, "side branch")
    _git(scratch, "checkout", "-q", "main")
    _make(scratch, "demo_fig", commit=side)
    _make(scratch, "demo_tab", commit="0123456789abcdef0123456789abcdef01234567")
    _make(scratch, "demo", commit=base + "+dirty")
    result = _audit(scratch)
    assert _codes(result) == [("stale", "demo_fig"), ("stale", "demo_tab")]
    assert "not an ancestor of HEAD" in str(result.problems[0])
    assert "does not have" in str(result.problems[1])
    assert any("uncommitted changes" in note and note.startswith("demo:") for note in result.notes)


def test_check_flags_mixed_profiles_and_a_foreign_profile(scratch):
    _make(scratch, "demo_fig", profile="smoke")
    _make(scratch, "demo_tab", profile="full")
    _make(scratch, "demo", profile="smoke")
    mixed = _audit(scratch)
    assert _codes(mixed) == [("profile", "*")]
    assert "full: demo_tab" in str(mixed.problems[0]) and "smoke: demo, demo_fig" in str(mixed.problems[0])
    assert _codes(_audit(scratch, "smoke")) == [("profile", "demo_tab")]
    assert _codes(_audit(scratch, "full")) == [("profile", "demo,demo_fig")]


def test_check_flags_wrong_notebook_unknown_names_missing_values_and_an_old_map(scratch):
    _make(scratch, "demo_fig", notebook="")
    _make(scratch, "demo_tab")
    _make(scratch, "demo", keys=("y",))
    (scratch / "paper" / "sections.tex").write_text(
        "\\genfigure{demo_fig}\n\\gentable{demo_tab}\n\\genval{demo}{x}\n\\genfigure{nobody_makes_this}\n\\genfigure{demo_tab}\n")
    (scratch / "paper" / "artefacts.tex").write_text("% old\n")
    result = _audit(scratch)
    assert _codes(result) == [("kind", "demo_tab"), ("map", "artefacts.tex"), ("notebook", "demo_fig"),
                              ("unknown", "nobody_makes_this"), ("value", "demo")]
    text = {p.code: str(p) for p in result.problems}
    assert "run by hand" in text["notebook"] and "\\genval{demo}{x}" in text["value"]


def test_cli_report_names_the_missing_artefacts(scratch, capsys):
    result = _audit(scratch)
    paper._print_audit(result, None)
    out = capsys.readouterr().out
    assert "The paper cannot be built: no notebook produced demo, demo_fig, demo_tab." in out
    assert re.search(r"MISSING\s+figure 'demo_fig'", out)


def test_readme_tables_show_the_map_and_the_timings(tmp_path):
    folder = tmp_path / "notebooks" / "smoke"
    folder.mkdir(parents=True)
    (folder / "timings.json").write_text(json.dumps({"01_demo": {"seconds": 95.0, "profile": "smoke", "date": "2025-01-02"}}))
    (tmp_path / "notebooks" / "full").mkdir()
    (tmp_path / "notebooks" / "full" / "timings.json").write_text(
        json.dumps({"02_other": {"seconds": 7200.0, "profile": "full", "date": "2025-01-03", "device": "GPU"}}))
    text = paper.readme_tables(REGISTRY, build_dir=tmp_path)
    assert "| `01_demo` | `demo_fig`, `unused_fig` |  | `demo` | `mastering.demo` |" in text
    # one timing column per registered profile (smoke, cpu, full), in registry order
    assert "| `01_demo` | 1.6 min | not run | not run | smoke 2025-01-02 |" in text
    assert "| `02_other` | not run | not run | 2.0 h (GPU) | full 2025-01-03 |" in text
