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


def _sense(*argv, timeout=120):
    return subprocess.run([sys.executable, "-m", "sense_nodes", *argv], capture_output=True, text=True,
                          timeout=timeout)


def test_bad_numbers_and_paths_are_refused_before_any_work(tmp_path, capsys):
    for bad in ("nan", "inf", "-1"):
        assert main(["run", "bsense", "--duration", bad]) == 2
        assert "--duration must be a finite number above 0" in capsys.readouterr().err
    a_file = tmp_path / "f"
    a_file.write_text("x")
    # the figures path is checked first: the benchmark does not run
    assert main(["bench", "codec", "--repeats", "1", "--sizes", "1000", "--json", str(a_file / "x.json")]) == 2
    err = capsys.readouterr()
    assert "is not a folder" in err.err and "codec_100k" not in err.out
    assert main(["bench", "codec", "--repeats", "1", "--sizes", "1000", "--json", str(tmp_path)]) == 2
    assert main(["run", "bsense", "--duration", "1", "--record", str(a_file)]) == 2
    assert main(["record", "/x", "-o", str(a_file / "bag"), "--duration", "1"]) == 2


def test_set_with_an_unknown_node_or_parameter_names_what_exists():
    proc = _sense("run", "bsense", "--duration", "1", "--set", "/bs/no_node:rate=2")
    assert proc.returncode == 2 and "has no node '/bs/no_node'" in proc.stderr
    assert "/bs/bs_radar_source" in proc.stderr and "Traceback" not in proc.stderr
    proc = _sense("run", "bsense", "--duration", "1", "--set", "/bs/bs_radar_source:speed=2")
    assert proc.returncode == 2 and "has no parameter 'speed'" in proc.stderr and "rate" in proc.stderr


def test_a_damaged_model_file_is_one_line_not_a_traceback(tmp_path):
    bad = tmp_path / "net.pt"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    proc = _sense("bench", "imaging", "--checkpoint", str(bad), "--repeats", "1", "--no-3d", timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(bad) in proc.stderr
