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
