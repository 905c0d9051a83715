"""The code passes the repository's lint rules (ruff.toml): no unused
import or variable, no undefined name, no pycodestyle error."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    try:
        import ruff  # noqa: F401 - installed by requirements.txt
    except ImportError:
        raise AssertionError("ruff is not installed: pip install -r requirements.txt") from None
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "sense_nodes", "test"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
