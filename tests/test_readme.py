"""The README's Python examples run as written."""
import re
from pathlib import Path

import pytest

import pyro_dirichlet as pdl

BLOCKS = re.findall(r"```python\n(.*?)```", (Path(__file__).parents[1] / "README.md").read_text(), re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, mnist_root, monkeypatch, capsys):
    monkeypatch.setenv("PYRO_DIRICHLET_DATA", mnist_root)
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {})
    printed = capsys.readouterr().out
    if "resnet18" in BLOCKS[index]:
        assert printed.splitlines()[0] == "12 64" and printed.splitlines()[-1] == "True"
    if "DirichletImportance" in BLOCKS[index]:
        assert printed.splitlines()[-1] == "True"
    if "dirichlet_switch" in BLOCKS[index]:  # your own Pyro model: a quarter of the MACs, fine-tuned
        fits, error = printed.splitlines()[-1].split()
        assert fits == "True" and float(error) < 6.0
    if "pdl.CRITERIA" in BLOCKS[index]:  # every registered criterion meets the budget
        lines = printed.splitlines()
        assert [line.split()[0] for line in lines] == list(pdl.CRITERIA) and all(line.endswith("True") for line in lines)
    if "5-8-45-15" in BLOCKS[index]:
        assert "'macs': 136825, 'paper_flops': 140242} 1988" in printed
