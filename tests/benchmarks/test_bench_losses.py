"""benchmarks/bench_losses.py: both cases run and print a ratio to auraloss measured in the same run."""

import importlib.util
import re

from mastering.paths import REPO_ROOT


def test_prints_one_ratio_per_case(capsys):
    path = REPO_ROOT / "benchmarks" / "bench_losses.py"
    spec = importlib.util.spec_from_file_location("bench_losses", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if re.search(r"\d\.\d\dx$", line)]
    assert [r.split(" (")[0] for r in rows] == ["evaluation excerpt", "one reference, 5 systems", "training batch"]
    for row in rows:
        ours, peer = (float(v.rstrip("s")) for v in row.split()[-3:-1])
        assert ours > 0 and peer > 0
