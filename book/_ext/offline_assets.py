"""Sphinx extension: the book's pages render math and widgets cleanly, offline when they can.

* When ``book/_vendor/`` exists (``python book/_ext/vendor_assets.py`` creates it), its contents
  are copied to ``_static/`` of the HTML build and the pages load MathJax, RequireJS and the
  ipywidgets HTML manager from there, so the book renders math and widgets without any CDN.
  Without the folder, the CDN defaults of Sphinx and myst-nb stay in place.
* On pages with widgets, ``static/widgets-embed-setup.js`` runs between RequireJS and the
  widget manager: it points the manager's AMD modules at the folder the bundle lives in (its
  fonts were requested relative to the page), stops the theme's Font Awesome script from
  rewriting the widgets' icons (the Play widget then threw on every change, and a slider linked
  to it never changed the image), and gives MathJax 3 the ``MathJax.Hub.Queue`` call the manager
  typesets widget labels with (every widget with a description threw a TypeError).
* MathJax is loaded on every page: chapter titles in the navigation sidebar contain math, which
  stayed raw TeX on pages whose own text has none.
* Inline scripts are emitted once. Sphinx 7.4 registers an inline script that an extension adds
  after the builder exists twice (once as ``None``, once as ``''``), so sphinx-thebe's
  ``const THEBE_JS_URL`` was declared twice on every page (a SyntaxError in the browser).

``tests/test_browser.py`` loads every page of the built book in Chromium and fails on any of these.
"""
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDOR = HERE.parent / "_vendor"
STATIC = HERE / "static"
REQUIRED = ["mathjax/es5/tex-chtml.js", "requirejs/require.js", "html-manager/dist/embed-amd.js"]
SETUP_JS = "widgets-embed-setup.js"


def vendored() -> bool:
    """True when every vendored asset the book loads is present in ``book/_vendor``."""
    return all((VENDOR / f).is_file() for f in REQUIRED)


def _with_setup_script(widgets_js: dict) -> dict:
    """Insert the setup script just before the widget manager's ``embed-amd.js``."""
    out = {}
    for path, attrs in widgets_js.items():
        if path.endswith("embed-amd.js") and SETUP_JS not in widgets_js:
            out[SETUP_JS] = {"data-dist-url": path.rsplit("/", 1)[0] + "/"}
        out[path] = attrs
    return out


def _config_inited(app, config):
    static = list(config.html_static_path) + [str(STATIC)]
    if vendored():
        static.append(str(VENDOR))
        # relative script paths are served from _static/
        config.mathjax_path = "mathjax/es5/tex-chtml.js"
        config.nb_ipywidgets_js = {
            "requirejs/require.js": {},
            "html-manager/dist/embed-amd.js": {},
        }
    config.html_static_path = static
    config.nb_ipywidgets_js = _with_setup_script(dict(config.nb_ipywidgets_js))


def _script_key(js):
    return (js.filename or "", js.priority, tuple(sorted(js.attributes.items())))


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        key = _script_key(js) if hasattr(js, "attributes") else js
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def setup(app):
    app.connect("config-inited", _config_inited, priority=100)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.set_html_assets_policy("always")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
