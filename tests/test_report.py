"""The report from run directories written by the real loop (tiny model, scripted generation)."""

import json

from emreason import loop
from emreason.backends.hf import HFBackend
from emreason.cli import main

from test_loop import cfg, scripted_generate


def test_report_table_tests_plots_html(tiny_llama, data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(HFBackend, "generate", scripted_generate)
    for name in ("pps", "star", "rejection"):
        loop.run(cfg(tiny_llama, sampler={"name": name, "k": 2}, iterations=1), tmp_path / "runs" / name, quiet=True)
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 0
    md = (out / "table.md").read_text()
    assert "| PPS |" in md.splitlines()[0] and "STaR" in md and "rejection" in md
    tests = json.loads((out / "paired_tests.json").read_text())
    pairs = {(t["a"], t["b"]) for t in tests}
    assert ("rejection", "pps") in pairs and ("none", "star") in pairs
    assert all(t["n"] == 4 for t in tests)
    for png in ("accuracy_vs_iteration.png", "accept_rate_vs_iteration.png", "rationale_length.png",
                "accuracy_vs_sampled_tokens.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "http" not in page.split("<body>")[1].split("<script>")[0]
    assert '"accepted": true' in page and "Plants need light" in page  # the sample browser holds the rationales


def test_report_errors_on_nothing(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "no finished run" in capsys.readouterr().err
