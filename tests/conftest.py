"""Test-wide settings: offline Hugging Face hub, repository root importable; a helper that runs a
results command with ``--quick``."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def run_results_command(module: str, out: Path, timeout: float = 300) -> dict:
    """Run ``python -m utils.<module> --quick --out OUT`` from the repository root, check that it
    exits 0 and that its file has a provenance block naming the command -> the results dict."""
    proc = subprocess.run([sys.executable, "-m", f"utils.{module}", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(Path(out).read_text())
    prov = result["provenance"]
    assert {"command", "date", "torch", "numpy", "seconds", "machine", "threads"} <= set(prov)
    assert prov["command"] == f"python -m utils.{module} --quick"
    return result
