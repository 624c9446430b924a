"""Fetch the web assets the book needs to render offline (MathJax, RequireJS, the ipywidgets
HTML manager) from the npm registry into ``book/_vendor/`` (git-ignored, about 30 MB).

    python book/_ext/vendor_assets.py

Every tarball is checked against the sha512 integrity pinned below before it is unpacked.
When ``book/_vendor/`` is present the book uses these files (see ``offline_assets.py``);
when it is absent the built pages load the same libraries from public CDNs.
"""
from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "_vendor"

# package spec -> (sha512 integrity from the npm registry, {path in the tarball: target folder})
PACKAGES = {
    "mathjax@3.2.2": (
        "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        {"package/es5": "mathjax/es5"}),
    "requirejs@2.3.7": (
        "sha512-DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
        {"package/require.js": "requirejs/require.js"}),
    "@jupyter-widgets/html-manager@1.0.15": (
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        {"package/dist": "html-manager/dist"}),
}


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch(spec: str, integrity: str, targets: dict, workdir: Path) -> None:
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not installed; install Node.js/npm to vendor the offline assets")
    proc = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(workdir)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode:
        raise RuntimeError(f"npm pack {spec} failed: {proc.stderr.strip()[-500:]}")
    tgz = workdir / proc.stdout.strip().splitlines()[-1]
    got = _integrity(tgz)
    if got != integrity:
        raise RuntimeError(f"checksum mismatch for {spec}: expected {integrity}, got {got}")
    with tarfile.open(tgz) as tar:
        for src, dst in targets.items():
            members = [m for m in tar.getmembers()
                       if (m.name == src or m.name.startswith(src + "/")) and m.isfile()]
            if not members:
                raise RuntimeError(f"{spec}: {src} not found in the package")
            for m in members:
                rel = Path(dst) / Path(m.name).relative_to(src) if m.name != src else Path(dst)
                out = VENDOR / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(m) as f_in, open(out, "wb") as f_out:
                    shutil.copyfileobj(f_in, f_out)
    print(f"vendored {spec}")


def main() -> int:
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    with tempfile.TemporaryDirectory() as tmp:
        for spec, (integrity, targets) in PACKAGES.items():
            fetch(spec, integrity, targets, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
