"""The claims ledger is generated from the chapters' verdicts and stays in step with them."""
import pytest

from utils import ledger


def test_ledger_page_matches_the_chapters_verdicts():
    assert ledger.PAGE.exists(), "run python -m utils.ledger"
    assert ledger.PAGE.read_text() == ledger.render(), (
        "a chapter's verdicts changed: regenerate the ledger with python -m utils.ledger")


def test_every_paper_claim_is_decided_or_says_why_not():
    verdicts = {p.name: ledger.verdict_lines(p) for p in ledger.chapters()}
    for claim in ledger.PAPER_CLAIMS:
        status, rows = ledger.paper_status(claim, verdicts)
        assert status in ("holds", "holds with a stated qualification", "not reproduced", "not tested here")
        assert rows or claim.untested


def test_status_logic_and_unmatched_checks():
    verdicts = {"x.ipynb": [(True, "alpha holds"), (False, "beta fails")]}
    ok = ledger.PaperClaim("c", "s", [ledger.Check("x.ipynb", "alpha")])
    assert ledger.paper_status(ok, verdicts)[0] == "holds"
    mixed = ledger.PaperClaim("c", "s", [ledger.Check("x.ipynb", "alpha"), ledger.Check("x.ipynb", "beta")])
    assert ledger.paper_status(mixed, verdicts)[0] == "holds with a stated qualification"
    against = ledger.PaperClaim("c", "s", [ledger.Check("x.ipynb", "alpha", supports=False)])
    assert ledger.paper_status(against, verdicts)[0] == "not reproduced"
    with pytest.raises(ValueError, match="matches 0 verdict lines"):
        ledger.paper_status(ledger.PaperClaim("c", "s", [ledger.Check("x.ipynb", "gamma")]), verdicts)
