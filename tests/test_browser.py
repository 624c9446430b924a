"""The built book in a real browser: every page of ``_toc.yml`` loaded from ``_build/html`` in
Chromium (Debian's package, driven by Playwright), with no network.

For every page it checks that
* the page loads with no console error, no uncaught page error, no missing local file, and no
  request leaving the machine (every request is routed: anything but file:, data: and blob: is
  recorded and aborted);
* math is typeset (MathJax ``mjx-container`` on pages whose source has math; no raw TeX left in
  any ``.math`` element, navigation included; no TeX error);
* every image loaded (complete, natural width > 0), the images that widgets draw included;
* every image of a cell output has a non-empty ``alt`` text, the images that widgets draw included;
* every widget renders, and moving each slider (keyboard on its handle) or picking another value
  of each dropdown changes the image shown (the pixels are compared);
* every exercise solution (sphinx-togglebutton on ``.solution.dropdown``) has content, starts
  collapsed and opens when its toggle is clicked;
* the Colab launch link of a notebook page is
  ``https://colab.research.google.com/github/<owner>/<repo>/blob/<branch>/book/<page>.ipynb``,
  with owner, repo and branch read from ``_config.yml``.
It also saves screenshots of two pages to ``_build/screenshots/`` (CI artefacts).

Run after a strict build with the vendored assets (see CONTRIBUTING.md):

    python book/_ext/vendor_assets.py && jupyter-book build . -W -n --keep-going --all
    BOOK_BROWSER_TESTS=1 pytest tests/test_browser.py

Under plain ``pytest`` (before any build) the module is skipped, with the reason; with
``BOOK_BROWSER_TESTS=1`` a missing build, Playwright or Chromium is a failure.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
ENABLED = os.environ.get("BOOK_BROWSER_TESTS") == "1"
BUILD_CMD = "python book/_ext/vendor_assets.py && jupyter-book build . -W -n --keep-going --all"
LOCAL_SCHEMES = ("file:", "data:", "blob:")
TIMEOUT_MS = 20_000
# the two pages photographed: the introduction, and a chapter with figures and a widget
SCREENSHOT_PAGES = ("book/intro", "book/10_steering")

if not ENABLED:
    pytest.skip("browser test of the built book: build it, then run with BOOK_BROWSER_TESTS=1 "
                "(.ci/run does; see CONTRIBUTING.md)", allow_module_level=True)


# ---------------------------------------------------------------- what the book should be

def toc_pages() -> list[str]:
    """Every page of ``_toc.yml`` (root first), as docnames like ``book/01_denoisers``."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return [re.sub(r"\.(ipynb|md)$", "", p) for p in pages]


PAGES = toc_pages()


def source_of(page: str) -> Path:
    for ext in (".ipynb", ".md"):
        if (ROOT / (page + ext)).is_file():
            return ROOT / (page + ext)
    raise FileNotFoundError(f"no source file for {page} (.ipynb or .md)")


def markdown_text(page: str) -> str:
    src = source_of(page)
    if src.suffix == ".md":
        return src.read_text()
    nb = json.loads(src.read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


MATH = re.compile(r"\$\$|\$[^$\n]+\$|\\begin\{|\{math\}|\\\(|\\\[")


def source_has_math(page: str) -> bool:
    text = re.sub(r"```.*?```", "", markdown_text(page), flags=re.S)  # not in code blocks
    return bool(MATH.search(text))


def expected_colab_url(page: str) -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]
    m = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?", repo["url"])
    assert m, f"repository.url in _config.yml is not a GitHub repository URL: {repo['url']}"
    owner, name = m.groups()
    book = (repo.get("path_to_book") or "").strip("/")
    path = f"{book}/{page}.ipynb" if book else f"{page}.ipynb"
    return (f"https://colab.research.google.com/github/{owner}/{name}/blob/"
            f"{repo.get('branch', 'main')}/{path}")


# ---------------------------------------------------------------- the browser

def _chromium() -> str | None:
    """BOOK_CHROMIUM if set, else Debian's /usr/bin/chromium, else chromium on the PATH."""
    if os.environ.get("BOOK_CHROMIUM"):
        path = os.environ["BOOK_CHROMIUM"]
        return path if Path(path).is_file() else None
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")


@pytest.fixture(scope="session")
def browser():
    missing = [p for p in PAGES if not (HTML / f"{p}.html").is_file()]
    if missing:
        pytest.fail(f"no built book: {', '.join(missing)} missing under _build/html; "
                    f"build first: {BUILD_CMD}", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: pip install -r tests/requirements.txt",
                    pytrace=False)
    exe = _chromium()
    if exe is None:
        pytest.fail("Chromium not found (BOOK_CHROMIUM, /usr/bin/chromium, PATH): "
                    "apt-get install -y chromium", pytrace=False)
    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=exe,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic"])
        yield b
        b.close()


@dataclass
class LoadedPage:
    name: str
    page: object                       # playwright Page
    errors: list = field(default_factory=list)      # console errors, page errors, missing files
    external: list = field(default_factory=list)    # requests that would have left the machine

    def problems(self) -> list[str]:
        out = list(self.errors) + [f"request leaving the machine (aborted): {u}"
                                   for u in self.external]
        if self.external:
            out.append("(was the book built without book/_vendor? run "
                       "`python book/_ext/vendor_assets.py` before the build)")
        return out


def open_page(browser, name: str, width: int = 1280, height: int = 900) -> LoadedPage:
    context = browser.new_context(viewport={"width": width, "height": height},
                                  service_workers="block")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    loaded = LoadedPage(name, page)

    def on_console(msg):
        # "Failed to load resource" repeats what requestfailed / the router recorded
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            loc = msg.location or {}
            loaded.errors.append(f"console error: {msg.text} ({loc.get('url', '')})")

    def on_request_failed(request):
        if request.url.startswith(LOCAL_SCHEMES):
            loaded.errors.append(f"failed to load {request.url}: {request.failure}")

    def route(r):
        url = r.request.url
        if url.startswith(LOCAL_SCHEMES):
            r.continue_()
        else:
            loaded.external.append(url)
            r.abort()

    page.on("console", on_console)
    page.on("pageerror", lambda err: loaded.errors.append(f"page error: {err}"))
    page.on("requestfailed", on_request_failed)
    page.on("websocket", lambda ws: loaded.external.append(ws.url))
    context.route("**/*", route)
    page.goto((HTML / f"{name}.html").as_uri(), wait_until="load")
    settle(loaded)
    return loaded


def settle(loaded: LoadedPage) -> None:
    """Wait for MathJax's first typesetting pass, the widgets and every image; what does not
    come in time is recorded as a problem of the page."""
    page = loaded.page
    steps = [
        ("MathJax did not finish typesetting", """async () => {
            if (window.MathJax && MathJax.startup && MathJax.startup.promise)
                await MathJax.startup.promise;
            return true; }""", None),
        ("widgets did not render", """n => n === 0 ||
            document.querySelectorAll('.widget-subarea > *').length >= n""",
         page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()),
        ("images did not finish loading", """() => [...document.images].every(img => img.complete)""",
         None),
    ]
    for what, js, arg in steps:
        try:
            page.wait_for_function(js, arg=arg, timeout=15_000)
        except Exception as err:
            loaded.errors.append(f"{what} within 15 s ({type(err).__name__})")
    page.wait_for_timeout(200)


@pytest.fixture(scope="module", params=PAGES)
def loaded(request, browser):
    """Each page is opened once; pytest runs all the checks of one page before the next."""
    lp = open_page(browser, request.param)
    yield lp
    lp.page.context.close()


# ---------------------------------------------------------------- the checks

def test_page_loads_cleanly_offline(loaded):
    assert loaded.page.title(), f"{loaded.name}: page has no title"
    problems = loaded.problems()
    assert not problems, f"{loaded.name}:\n  " + "\n  ".join(problems)


def test_math_is_typeset(loaded):
    page = loaded.page
    typeset = page.locator("article.bd-article mjx-container").count()
    if source_has_math(loaded.name):
        assert typeset > 0, f"{loaded.name}: its source has math but MathJax typeset none"
    raw = page.evaluate("""() => [...document.querySelectorAll('span.math, div.math')]
        .filter(e => !e.closest('.tex2jax_ignore, .mathjax_ignore') && !e.querySelector('mjx-container'))
        .map(e => e.textContent.trim().slice(0, 80))""")
    assert not raw, f"{loaded.name}: {len(raw)} math elements left as raw TeX, e.g. {raw[:3]}"
    tex_errors = page.evaluate("""() => [...document.querySelectorAll('mjx-merror')]
        .map(e => e.getAttribute('data-mjx-error') || e.textContent.slice(0, 80))""")
    assert not tex_errors, f"{loaded.name}: MathJax TeX errors: {tex_errors[:5]}"


def test_every_image_loads(loaded):
    images = loaded.page.evaluate("""() => [...document.images].map(img => ({
        src: img.currentSrc || img.src, complete: img.complete, width: img.naturalWidth,
        widget: !!img.closest('.widget-subarea')}))""")
    broken = [i["src"][:100] + (" (in a widget)" if i["widget"] else "")
              for i in images if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"{loaded.name}: {len(broken)} of {len(images)} images did not load: {broken}"



def test_output_images_have_alt_text(loaded):
    """Every image a code cell shows carries alternative text: figures through cell metadata
    ``mystnb.image.alt``, the images widgets draw through the ``alt`` that ``utils.explorer``
    writes into their ``<img>`` (both checked in the sources by tests/test_accessibility.py)."""
    images = loaded.page.evaluate("""() => [...document.querySelectorAll('.cell_output img')]
        .map(img => ({src: (img.currentSrc || img.src).split('/').pop().slice(0, 40),
                      alt: (img.getAttribute('alt') || '').trim(),
                      widget: !!img.closest('.widget-subarea, .jupyter-widgets')}))""")
    if not images:
        pytest.skip("no images in cell outputs on this page")
    missing = [i["src"] + (" (in a widget)" if i["widget"] else "") for i in images if not i["alt"]]
    assert not missing, (f"{loaded.name}: {len(missing)} cell-output images without alt text "
                         f"(set the cell's mystnb.image.alt metadata): {missing}")

# signature of the images shown inside one widget: their pixels, hashed (null while one of them
# is still loading or broken)
SHOWN_IMAGES = """root => {
  const shown = [...root.querySelectorAll('img')].filter(img => img.checkVisibility());
  if (shown.some(img => !img.complete || img.naturalWidth === 0)) return null;
  return shown.map(img => {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    let h = 2166136261;
    for (let i = 0; i < px.length; i++) { h ^= px[i]; h = Math.imul(h, 16777619) >>> 0; }
    return `${c.width}x${c.height}:${h}`;
  });
}"""


def _changes_image(page, widget, act, label: str) -> str | None:
    before = widget.evaluate(SHOWN_IMAGES)
    if before is None:
        return f"{label}: an image the widget shows did not load"
    if not before:
        return f"{label}: the widget shows no image"
    act()
    try:
        page.wait_for_function(
            f"""([root, before]) => {{ const now = ({SHOWN_IMAGES})(root);
                return now !== null && now.length > 0 && JSON.stringify(now) !== JSON.stringify(before); }}""",
            arg=[widget.element_handle(), before], timeout=5_000)
    except Exception:
        return f"{label}: the image shown did not change (or the new one did not load)"
    return None


def test_widgets_render_and_respond(loaded):
    page = loaded.page
    n_views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
    widgets = page.locator(".widget-subarea")
    if n_views == 0:
        pytest.skip("no widgets on this page")
    assert widgets.count() == n_views, \
        f"{loaded.name}: {n_views} widget views in the page, {widgets.count()} rendered"
    failures = []
    for w in range(widgets.count()):
        widget = widgets.nth(w)
        if not widget.evaluate("e => e.offsetHeight > 0 && !/Error displaying widget/.test(e.textContent)"):
            failures.append(f"widget {w}: not rendered (empty or 'Error displaying widget')")
            continue
        handles = widget.locator(".noUi-handle")
        selects = widget.locator("select")
        if handles.count() + selects.count() == 0:
            failures.append(f"widget {w}: has no slider or dropdown to test")
        for h in range(handles.count()):
            handle = handles.nth(h)

            def slide(handle=handle):
                handle.focus()
                at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
                page.keyboard.press("ArrowLeft" if at_end else "ArrowRight")

            failures.append(_changes_image(page, widget, slide, f"widget {w}, slider {h}"))
        for s in range(selects.count()):
            select = selects.nth(s)

            def pick(select=select):
                values = select.evaluate("e => [...e.options].map(o => o.value)")
                current = select.input_value()
                select.select_option(next(v for v in values if v != current))

            failures.append(_changes_image(page, widget, pick, f"widget {w}, dropdown {s}"))
    failures = [f for f in failures if f]
    assert not failures, f"{loaded.name}:\n  " + "\n  ".join(failures)


CONTENT_VISIBLE = """e => [...e.children].filter(c => !c.classList.contains('admonition-title'))
    .some(c => c.checkVisibility() && c.getBoundingClientRect().height > 0)"""


HAS_CONTENT = """e => [...e.children].filter(c => !c.classList.contains('admonition-title'))
    .some(c => c.textContent.trim() || c.querySelector('img, mjx-container, pre'))"""


def test_solutions_start_hidden_and_open(loaded):
    page = loaded.page
    solutions = page.locator(".solution.dropdown")
    if solutions.count() == 0:
        pytest.skip("no exercise solutions on this page")
    failures = []
    for i in range(solutions.count()):
        sol = solutions.nth(i)
        sid = sol.get_attribute("id")
        if not sol.evaluate(HAS_CONTENT):
            failures.append(f"{sid}: the solution dropdown is empty (is its solution code in a "
                            "cell after it, visible to the reader?)")
            continue
        if sol.evaluate(CONTENT_VISIBLE):
            failures.append(f"{sid}: solution visible before its toggle is clicked")
            continue
        button = sol.locator(":scope > .admonition-title > button.toggle-button")
        if button.count() != 1:
            failures.append(f"{sid}: no toggle button")
            continue
        button.click()
        try:
            sol.locator(":scope > :not(.admonition-title)").first.wait_for(state="visible",
                                                                             timeout=3_000)
        except Exception:
            pass
        if not sol.evaluate(CONTENT_VISIBLE):
            failures.append(f"{sid}: content not visible after clicking its toggle")
    assert not failures, f"{loaded.name}:\n  " + "\n  ".join(failures)


def test_colab_link(loaded):
    links = loaded.page.eval_on_selector_all(
        'a[href^="https://colab.research.google.com"]', "els => els.map(a => a.href)")
    if source_of(loaded.name).suffix != ".ipynb":
        assert not links, f"{loaded.name} is not a notebook but links to Colab: {links}"
        return
    expected = expected_colab_url(loaded.name)
    assert links, f"{loaded.name}: no Colab launch link (expected {expected})"
    assert set(links) == {expected}, f"{loaded.name}: Colab link {links}, expected {expected}"


def test_page_stays_clean_after_interaction(loaded):
    """Sliding, picking and opening raised no error and fetched nothing from outside."""
    loaded.page.wait_for_timeout(300)
    problems = loaded.problems()
    assert not problems, f"{loaded.name}:\n  " + "\n  ".join(problems)


def test_screenshots(browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name in SCREENSHOT_PAGES:
        lp = open_page(browser, name)
        try:
            widget = lp.page.locator(".widget-subarea")
            if widget.count():
                widget.first.scroll_into_view_if_needed()
                lp.page.evaluate("() => window.scrollBy(0, -250)")
                lp.page.wait_for_timeout(200)
            out = SHOTS / (name.replace("/", "_") + ".png")
            lp.page.screenshot(path=str(out))
            assert out.stat().st_size > 10_000, f"{out.name} looks empty"
            assert not lp.problems(), f"{name}:\n  " + "\n  ".join(lp.problems())
        finally:
            lp.page.context.close()
