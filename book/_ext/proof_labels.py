"""Sphinx extension: give ``prf:proof`` a ``:label:`` option.

sphinx-proof 0.4 accepts ``:label:`` on theorems but not on proofs, and gives every proof the
same HTML id (``proof``). With this extension a labelled proof gets its label as its id, so the
ids on a page are unique and a proof can be linked to (``#prf-...``).
"""
from docutils.parsers.rst import directives


def setup(app):
    from sphinx_proof.directive import ProofDirective

    if "label" not in ProofDirective.option_spec:
        ProofDirective.option_spec = {**ProofDirective.option_spec, "label": directives.unchanged}
        run = ProofDirective.run

        def run_with_label(self):
            out = run(self)
            label = self.options.get("label")
            if label:
                out[0].children[0]["ids"] = [label]
            return out

        ProofDirective.run = run_with_label
    return {"parallel_read_safe": True, "parallel_write_safe": True}
