"""The `sense` command line: verbs, figures JSON contract, report page, errors."""
import json
import subprocess
import sys

from sense_nodes.cli.main import main


def test_every_verb_of_the_contract_is_listed(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for verb in ("run", "sim", "record", "data", "train", "eval", "bench", "report"):
        assert verb in out


def test_bench_codec_writes_the_contract_key(tmp_path, capsys):
    path = tmp_path / "codec.json"
    assert main(["bench", "codec", "--repeats", "3", "--sizes", "1000", "--json", str(path)]) == 0
    figures = json.loads(path.read_text())
    assert figures["codec_100k_median_ms"] > 0
    assert "codec_100k_median_ms" in capsys.readouterr().out


def test_report_collects_figures_and_pictures(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"f1_pct": 90.0, "paper_f1_pct": 95.56}))
    (tmp_path / "fig.png").write_bytes(b"\x89PNG\r\n")
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "f1_pct" in page and "95.56" in page and "fig.png" in page


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sense_nodes", "run", "no_such_deployment", "--duration", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown deployment 'no_such_deployment'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "sense_nodes", "report", "--results", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
