"""Every solution's code stays collapsed online (issue 13: solutions hidden, code included)."""
from pathlib import Path

import nbformat
import pytest

from utils import solution_cells

BOOK = Path(__file__).resolve().parents[1] / "book"


def test_solution_code_cells_are_found():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("```{exercise} E\n:label: ex-a\n```"),
        nbformat.v4.new_markdown_cell("````{solution} ex-a\n:class: dropdown\nText.\n````"),
        nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("print(x)"),
        nbformat.v4.new_markdown_cell("## Next"), nbformat.v4.new_code_cell("y = 2")])
    assert solution_cells.solution_code_cells(nb) == {2: "ex-a", 3: "ex-a"}
    assert solution_cells.tag_solution_code(nb) == 2 and solution_cells.tag_solution_code(nb) == 0
    assert "hide-cell" not in nb.cells[5].metadata.get("tags", [])


@pytest.mark.parametrize("path", sorted(BOOK.glob("*.ipynb")), ids=lambda p: p.name)
def test_every_solution_code_cell_is_collapsed(path):
    nb = nbformat.read(path, as_version=4)
    open_cells = [i for i in solution_cells.solution_code_cells(nb)
                  if solution_cells.HIDE_TAG not in nb.cells[i].metadata.get("tags", [])]
    assert not open_cells, (f"{path.name}: solution code cells {open_cells} are not tagged "
                            f"{solution_cells.HIDE_TAG!r}; run python -m utils.solution_cells")
