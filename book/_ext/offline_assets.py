"""Sphinx extension: serve MathJax and the ipywidgets embed scripts from ``book/_vendor``.

When ``book/_vendor/`` exists (``python book/_ext/vendor_assets.py`` creates it), its contents
are copied to ``_static/`` of the HTML build and the pages load MathJax, RequireJS and the
ipywidgets HTML manager from there, so the book renders math and widgets without any CDN.
Without the folder, the CDN defaults of Sphinx and myst-nb stay in place.
"""
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "_vendor"
REQUIRED = ["mathjax/es5/tex-chtml.js", "requirejs/require.js", "html-manager/dist/embed-amd.js"]


def _config_inited(app, config):
    if not all((VENDOR / f).is_file() for f in REQUIRED):
        return
    config.html_static_path = list(config.html_static_path) + [str(VENDOR)]
    # relative script paths are served from _static/
    config.mathjax_path = "mathjax/es5/tex-chtml.js"
    config.nb_ipywidgets_js = {
        "requirejs/require.js": {},
        "html-manager/dist/embed-amd.js": {},
    }


def setup(app):
    app.connect("config-inited", _config_inited, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
