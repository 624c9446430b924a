"""The claims ledger: every claim of the paper's public sources and every checked claim of the
book, with its verdict, generated from the chapters' printed verdict lines.

Chapters print each claim they make from a trained or sampled model through
:func:`utils.claims.verdict` (``[holds] ...`` or ``[FAILS] ...``). This module reads those lines
from the executed notebooks and writes ``book/claims_ledger.md``:

* the paper's claims (its abstract, the authors' blog and the official code, the only public
  sources), each tied to the verdict lines that decide it, with the book's reading: holds, holds
  with a stated qualification, or not reproduced;
* the theorems and propositions of each chapter;
* every verdict line of every chapter.

    python -m utils.ledger            # regenerate the page after re-executing chapters

``tests/test_ledger.py`` fails when a verdict changes and the page was not regenerated, or when a
check named below no longer matches any verdict line.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
PAGE = BOOK / "claims_ledger.md"
VERDICT = re.compile(r"^\[(holds|FAILS)\] (.+)$")
STATEMENT = re.compile(r"```\{prf:(theorem|proposition|lemma|corollary)\}\s*(.*?)\s*\n(?::label:\s*(\S+))?")


@dataclass
class Check:
    chapter: str            # notebook file name
    text: str               # a substring of the verdict line
    supports: bool = True   # does the verdict *holding* support the paper's claim?


@dataclass
class PaperClaim:
    claim: str
    source: str
    checks: list = field(default_factory=list)
    qualification: str = ""
    untested: str = ""      # why no chapter decides it here


PAPER_CLAIMS = [
    PaperClaim(
        "A memorizing model stores raw training samples in its weights, for encoding and decoding.",
        "abstract",
        [Check("03_memorization.ipynb", "every run stores every digit in an encoder row"),
         Check("05_spikiness.ipynb", "digits: every recipe of the factorial and the official one store every digit"),
         Check("05_spikiness.ipynb", "faces: no recipe stores all five faces", supports=False)],
        qualification="On five digits every recipe stores every digit; on five bundled faces no "
                      "recipe stores them (the weights learn the faces' span), and untied decoders "
                      "store them only with the penalty or RMSprop (chapters 3, 5)."),
    PaperClaim(
        "Memorization gives localized, spiky representations.",
        "abstract",
        [Check("05_spikiness.ipynb", "digits: with the penalty, or with RMSprop, top-1 share > 0.85"),
         Check("05_spikiness.ipynb", "digits: Adam without the penalty, top-1 share < 0.4", supports=False),
         Check("05_spikiness.ipynb", "official recipe after 1k steps: top-1 < 0.3 neuron by neuron, > 0.8 merged")],
        qualification="Neuron by neuron it depends on the training recipe (Adam without the "
                      "neuron-norm penalty spreads a stored sample over parallel copies); merged "
                      "over parallel units it holds for the official recipe (chapter 5)."),
    PaperClaim(
        "A generalizing model captures local data statistics.",
        "abstract",
        [Check("04_generalization.ipynb", "the top 7 learned gains match lambda/(lambda+sigma^2)"),
         Check("04_generalization.ipynb", "every live neuron has most of its norm (> 0.5) in one cluster's span")],
        qualification="The weights live in the clusters' spans with near-Wiener gains, but the "
                      "network is not gated by cluster (chapter 4)."),
    PaperClaim(
        "Generalization gives balanced representations.",
        "abstract",
        [Check("05_spikiness.ipynb", "within a recipe of the factorial, every generalization run"),
         Check("05_spikiness.ipynb", "on the digits one threshold separates every recipe and seed"),
         Check("05_spikiness.ipynb", "on the mixture no threshold does", supports=False)],
        qualification="Within one recipe, and on the same digits across every recipe, the "
                      "generalizing networks are less spiky than the memorizing ones; across "
                      "datasets no single threshold separates them (chapter 5)."),
    PaperClaim(
        "Imbalanced data gives a hybrid regime: rare samples memorized, the bulk generalized.",
        "blog",
        [Check("04_generalization.ipynb", "main clusters generalize: test/train < 1.1 and test/Bayes < 2"),
         Check("04_generalization.ipynb", "duplicated rare samples are nearer a weight than typical samples"),
         Check("04_generalization.ipynb", "attraction needs the copies")],
        qualification="Duplicated rare samples pull their neighbourhood toward them and sit nearer "
                      "a weight, but training stores few of them outright at the book's cosine "
                      "0.9 (chapters 4, 5)."),
    PaperClaim(
        "The empirical denoiser (the exact minimizer of the training loss) only returns training points.",
        "blog",
        [Check("07_relu_diffusion.ipynb", "the empirical denoiser returns only training images")]),
    PaperClaim(
        "A representation-based detector finds memorized generations (official probe: post-norm2 "
        "SiLU of up_blocks.0's resnets, timestep 10, empty prompt, max pool, std).",
        "abstract; official code 2-Application/rep_extraction_utils.py",
        [Check("09_detection.ipynb", "at prompt level the official probe (resnets.0) beats Wen et al.'s noise gap"),
         Check("08_unet.ipynb", "the official probe's 95% intervals (copy-test labels, both resnets) include 0.5", supports=False)],
        qualification="At the prompt level, in the planted miniature of chapter 9; inside one "
                      "memorized network it does not tell copies from non-copies (chapter 8)."),
    PaperClaim(
        "Steering along a representation direction edits generalized generations and leaves memorized ones.",
        "abstract; official code 2-Application/SD_steering.ipynb",
        [Check("10_steering.ipynb", "generalized generations get bolder at every alpha > 0"),
         Check("10_steering.ipynb", "at alpha = 0.5 the memorized ink change is under a tenth of the generalized one"),
         Check("10_steering.ipynb", "from alpha = 1 the memorized generations move", supports=False)],
        qualification="Up to alpha = 0.5 with the official recipe; from alpha = 1 the memorized "
                      "generations move and stop copying (chapter 10)."),
    PaperClaim(
        "The picture holds in Stable Diffusion v1.4 (separation, detection and steering).",
        "abstract",
        untested="Chapter 11 implements the analysis; on this machine it runs in smoke mode on a "
                 "random-weight stack, and the book ships no GPU results file yet."),
]


def verdict_lines(path: Path) -> list[tuple[bool, str]]:
    """(holds, claim) for every verdict line printed in the executed notebook ``path``."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") != "stream":
                continue
            for line in "".join(o.get("text", "")).splitlines():
                m = VERDICT.match(line.strip())
                if m:
                    out.append((m.group(1) == "holds", m.group(2)))
    return out


def statements(path: Path) -> list[tuple[str, str, str]]:
    """(kind, title, label) of every theorem, proposition, lemma and corollary of ``path``."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    out = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for m in STATEMENT.finditer(cell.source):
                out.append((m.group(1), m.group(2), m.group(3) or ""))
    return out


def chapters() -> list[Path]:
    """The chapter notebooks, in the order of ``_toc.yml``."""
    toc = (ROOT / "_toc.yml").read_text()
    names = re.findall(r"file:\s*book/(\S+)", toc)
    return [BOOK / f"{n}.ipynb" for n in names if (BOOK / f"{n}.ipynb").exists()]


def _find(check: Check, verdicts: dict) -> tuple[bool, str]:
    hits = [(h, c) for h, c in verdicts.get(check.chapter, []) if check.text in c]
    if len(hits) != 1:
        raise ValueError(f"ledger check {check.text!r} matches {len(hits)} verdict lines of "
                         f"{check.chapter}; update utils/ledger.py")
    return hits[0]


def paper_status(claim: PaperClaim, verdicts: dict) -> tuple[str, list]:
    """The book's reading of a paper claim and the rows (chapter, verdict, result, role) behind it."""
    if claim.untested:
        return "not tested here", []
    rows, agree = [], []
    for check in claim.checks:
        holds, text = _find(check, verdicts)
        agree.append(holds == check.supports)
        rows.append((check.chapter, text, holds, "for" if holds == check.supports else "against"))
    if all(agree):
        return ("holds with a stated qualification" if claim.qualification else "holds"), rows
    if any(agree):
        return "holds with a stated qualification", rows
    return "not reproduced", rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


def render() -> str:
    """The ledger page, as Markdown."""
    paths = chapters()
    verdicts = {p.name: verdict_lines(p) for p in paths}
    lines = ["# Appendix B: Claims ledger", "",
             "Every claim of the paper's public sources (its abstract, the authors' blog and the",
             "official code), and every claim this book checks, with its verdict. The page is",
             "generated by `python -m utils.ledger` from the verdict lines the chapters print",
             "(`[holds]` or `[FAILS]`), so it cannot drift from their outputs; a test fails when a",
             "verdict changes and the page was not regenerated. For each paper claim, the lines",
             "below it are the checks that decide it, marked *for* or *against* the claim.", "",
             "## The paper's claims", ""]
    for i, claim in enumerate(PAPER_CLAIMS, 1):
        status, rows = paper_status(claim, verdicts)
        lines += [f"**{i}. {claim.claim}** ({claim.source})", "", f"- Verdict: **{status}**."]
        if claim.qualification:
            lines.append(f"- Qualification: {claim.qualification}")
        if claim.untested:
            lines.append(f"- Why: {claim.untested}")
        for chapter, text, holds, role in rows:
            lines.append(f"- {role} — {chapter.removesuffix('.ipynb')}: "
                         f"`[{'holds' if holds else 'FAILS'}]` {_cell(text)}")
        lines.append("")
    lines += ["## The book's theorems and propositions", "",
              "Each is proved in its chapter, with a numerical check in the cells that follow it.", ""]
    for p in paths:
        st = statements(p)
        if st:
            lines.append(f"- **{p.stem}**: " + "; ".join(
                f"{kind} {_cell(title) or label}" + (f" ({{prf:ref}}`{label}`)" if label else "")
                for kind, title, label in st))
    lines += ["", "## Every checked claim, by chapter", ""]
    for p in paths:
        v = verdicts[p.name]
        if not v:
            continue
        n_fail = sum(not h for h, _ in v)
        lines += [f"### {p.stem}", "", f"{len(v)} checked claims, {n_fail} failing.", "",
                  "| verdict | claim |", "|---|---|"]
        lines += [f"| {'holds' if h else '**FAILS**'} | {_cell(c)} |" for h, c in v]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    PAGE.write_text(render())
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
