"""Every runnable example (examples/*.py) runs as written and prints what its comments say."""
import runpy
from pathlib import Path

import pytest

import pyro_dirichlet as pdl

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(name, mnist_root, monkeypatch, capsys) -> list[str]:
    monkeypatch.setenv("PYRO_DIRICHLET_DATA", mnist_root)
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out.splitlines()


def test_every_example_is_checked():
    checked = {"quickstart.py", "any_network.py", "torch_pruning_interop.py", "all_criteria.py", "own_pyro_model.py",
               "vit_heads.py", "study.py", "sequence_model.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == checked


def test_quickstart(mnist_root, monkeypatch, capsys):
    """A quarter of the MACs, fine-tuned to within a point of the full network (measured: 3.75% full,
    3.35% pruned, 5-31-496-500)."""
    lines = run("quickstart.py", mnist_root, monkeypatch, capsys)
    assert lines[-2].endswith(" True")
    full, pruned = (float(w.rstrip("%")) for w in lines[-1].split() if w.endswith("%"))
    assert full < 6 and pruned < full + 1, lines[-1]


def test_any_network(mnist_root, monkeypatch, capsys):
    assert run("any_network.py", mnist_root, monkeypatch, capsys) == ["12 64", "True"]


def test_torch_pruning_interop(mnist_root, monkeypatch, capsys):
    assert run("torch_pruning_interop.py", mnist_root, monkeypatch, capsys)[-1] == "True"


def test_all_criteria(mnist_root, monkeypatch, capsys):
    lines = run("all_criteria.py", mnist_root, monkeypatch, capsys)
    assert [line.split()[0] for line in lines] == list(pdl.CRITERIA)
    assert all(line.endswith("True") for line in lines)


def test_own_pyro_model(mnist_root, monkeypatch, capsys):
    """A quarter of the MACs, fine-tuned to about the full network's error."""
    lines = run("own_pyro_model.py", mnist_root, monkeypatch, capsys)
    fits, error = lines[-1].split()
    assert fits == "True" and float(error) < 6.0, lines[-2:]


def test_vit_heads(mnist_root, monkeypatch, capsys):
    """Half the MACs by heads and MLP units, fine-tuned to within 6 points of the full network (measured,
    seeded: 12.20% full; 17.60% pruned, heads 1-3, with the library's form for a LayerNorm network, rKs;
    16.75%, heads 2-3, with s)."""
    pytest.importorskip("timm")
    lines = run("vit_heads.py", mnist_root, monkeypatch, capsys)
    heads, fits = lines[-2].rsplit(" ", 1)
    assert fits == "True" and all(1 <= h <= 4 for h in eval(heads)), lines[-2]
    full, pruned = (float(w.rstrip("%")) for w in lines[-1].split() if w.endswith("%"))
    assert full < 15 and pruned < full + 6, lines[-1]


def test_study(mnist_root, monkeypatch, capsys):
    """Right after pruning (one value) and after one epoch (2 paired seeds), the best Dirichlet row
    against the best baseline row, both chosen on validation."""
    lines = run("study.py", mnist_root, monkeypatch, capsys)
    assert [line.split()[0] for line in lines] == ["0", "1"]
    assert all(line.split()[1] == "dirichlet@likelihood@4x" and line.split()[2].startswith("l1@") for line in lines)
    assert [line.split()[-1] for line in lines] == ["1", "2"]


def test_the_docs_show_the_examples_as_they_are():
    """Every Python block in the README and docs/ is one of examples/*.py, verbatim, so what the
    docs show is what the tests run."""
    import re

    root = EXAMPLES.parent
    examples = {p.read_text() for p in EXAMPLES.glob("*.py")}
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S):
            assert block in examples, f"{page.name}: a Python block that is not an examples/ file:\n{block[:200]}"


def test_sequence_model(capsys):
    """A Conformer-style Conv1d model with a per-frame BCE loss: every site found, pruned at half its
    MACs by four rankings at Dirichlet's counts, each trimmed exactly and better after fine-tuning
    with the same loss than before (smaller than the example's defaults, to keep the suite fast)."""
    example = runpy.run_path(str(EXAMPLES / "sequence_model.py"))
    example["main"](train_n=256, test_n=128, epochs=12, finetune_epochs=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[1:] == ["convs.0.value", "convs.1.value", "ffs.0.up", "ffs.1.up"]
    full = lines[1].split()
    assert float(full[1].rstrip("%")) < 15 and full[-1] == "True", lines[1]
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["dirichlet", "l1", "tp-magnitude", "random"]
    for name, before, after, exact in rows:
        assert exact == "True" and float(after.rstrip("%")) < float(before.rstrip("%")), (name, before, after)
