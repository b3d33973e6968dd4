import json
import subprocess
import sys

import pytest

from emreason.cli import main


def test_eval_writes_metrics_and_predictions(tiny_llama, data_dir, tmp_path, capsys):
    out = tmp_path / "ev"
    rc = main(["eval", "--model", str(tiny_llama), "--dataset", "arc_easy", "--split", "test", "--limit", "6",
               "--max-new-tokens", "8", "--out", str(out), "--quiet", "--data-dir", str(data_dir)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "ci_low", "ci_high", "n", "parse_rate", "mean_rationale_tokens", "model",
                "dataset", "split", "mode"):
        assert key in m
    assert m["n"] == 6 and m["mode"] == "cot"
    rows = [json.loads(l) for l in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {"id", "prompt", "output", "pred", "gold", "correct"} <= set(rows[0])
    assert "accuracy" in capsys.readouterr().out
    # never overwritten silently
    before = (out / "metrics.json").read_text()
    assert main(["eval", "--model", str(tiny_llama), "--limit", "2", "--out", str(out), "--quiet"]) == 2
    assert (out / "metrics.json").read_text() == before
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["direct", "loglik"])
def test_eval_modes(tiny_qwen, data_dir, tmp_path, mode):
    out = tmp_path / mode
    assert main(["eval", "--model", str(tiny_qwen), "--dataset", "openbookqa", "--limit", "4", "--mode", mode,
                 "--max-new-tokens", "6", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "metrics.json").read_text())["mode"] == mode


@pytest.mark.parametrize("argv,fragment", [
    (["eval", "--model", "no-such-alias"], "unknown model"),
    # the model is checked before the data is read, so this fails on the model, with or without data
    (["eval", "--model", "no-such-alias", "--data-dir", "/does/not/exist"], "unknown model"),
    (["eval", "--model", "/no/such/model.gguf", "--data-dir", "/does/not/exist"], "not found"),
    (["eval", "--dataset", "nope"], "unknown dataset"),
    (["eval", "--split", "bogus"], "no split 'bogus'"),
    (["eval", "--data-dir", "/does/not/exist"], "is not a directory"),
    (["models", "fetch"], "needs a model alias"),
    (["run", "no/such/config.yaml"], "not found"),
    (["run", "configs/quickstart.yaml", "--set", "iterations"], "KEY=VALUE"),
    (["run", "configs/quickstart.yaml", "--set", "sampler.k=0"], "sampler.k"),
    (["report", "no/such/run", "--out", "/tmp/x"], "not found"),
])
def test_bad_input_is_one_line_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "Traceback" not in err


def test_bad_flag_value_in_a_real_process():
    proc = subprocess.run([sys.executable, "-m", "emreason.cli", "eval", "--limit", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "must be at least 1" in proc.stderr and "Traceback" not in proc.stderr


def test_a_bad_data_file_changes_nothing_on_disk(tmp_path, tiny_llama):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q?", "choices": ["a", "b"], "answer": "Z"}\n')
    out = tmp_path / "ev"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = subprocess.run([sys.executable, "-m", "emreason.cli", "eval", "--model", str(tiny_llama), "--dataset",
                           str(bad), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2 and f"{bad}:1" in proc.stderr and "not among the labels" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
