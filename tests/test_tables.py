"""The README's and docs/results.md's results tables are what the results files give."""
from pathlib import Path

import pytest

from pyro_dirichlet.inference import tables

ROOT = Path(__file__).resolve().parents[1]


def test_tables_match_the_results_files():
    assert tables.main(["--check"]) == 0


def test_a_retyped_figure_is_caught():
    text = (ROOT / "README.md").read_text()
    block = tables.BLOCK.search(text)
    assert block is not None, "the README has no generated table"
    body = block.group("body")
    digit = next(i for i, c in enumerate(body) if c.isdigit())
    wrong = body[:digit] + str((int(body[digit]) + 1) % 10) + body[digit + 1:]
    edited = text[:block.start("body")] + wrong + text[block.end("body"):]
    assert tables.render(edited) == text


def test_an_unknown_table_is_refused():
    with pytest.raises(KeyError, match="unknown table 'nope'"):
        tables.render("<!-- table: nope -->\n<!-- /table -->")


def _figures_of_results() -> set[str]:
    """Every number of every results file, as written in its .md and rounded to 0-3 decimals from its .json."""
    import json
    import re

    figures: set[str] = set()

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            figures.update(f"{x:.{d}f}" for d in range(4))
        elif isinstance(x, str):
            figures.update(re.findall(r"\d+(?:\.\d+)?", x))
    for path in (ROOT / "results").rglob("*.json"):
        walk(json.loads(path.read_text()))
    for path in (ROOT / "results").rglob("*.md"):
        figures.update(m.replace(",", "") for m in re.findall(r"\d[\d,]*(?:\.\d+)?", path.read_text()))
    return figures


def test_every_decimal_figure_in_a_hand_written_table_is_in_a_results_file():
    """The tables of docs/results.md and the README that are not generated: each decimal figure in them
    (an error, a time) occurs in some results file, so a retyped or stale figure fails here."""
    import re

    figures = _figures_of_results()
    missing = []
    for doc in tables.DOCUMENTS:
        text = tables.BLOCK.sub("", (ROOT / doc).read_text())
        for line in text.splitlines():
            if line.startswith("|"):
                for m in re.findall(r"(?<![\w.-])\d[\d,]*\.\d+(?!\w)", line):
                    if m.replace(",", "") not in figures:
                        missing.append(f"{doc}: {m} in {line[:80]}")
    assert not missing, "figures in no results file:\n" + "\n".join(missing)


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move readings to docs/ (at most 150)"
