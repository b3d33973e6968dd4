import pytest

from emreason import grid
from emreason.backends.hf import HFBackend
from emreason.cli import main
from emreason.errors import EmreasonError

from test_loop import scripted_generate


def test_expand_product_and_overrides():
    raw = {"iterations": 1, "grid": {"data.dataset": ["arc_easy", "mmlu"], "sampler.name": ["none", "pps"]},
           "overrides": [{"when": {"data.dataset": "mmlu"}, "set": {"data.train_split": "val+dev"}}]}
    cells = grid.expand(raw)
    assert [n for n, _ in cells] == ["smollm2-135m-arc_easy-none-s0", "smollm2-135m-arc_easy-pps-s0",
                                     "smollm2-135m-mmlu-none-s0", "smollm2-135m-mmlu-pps-s0"]
    assert {c.data.train_split for n, c in cells if "mmlu" in n} == {"val+dev"}
    assert {c.data.train_split for n, c in cells if "arc" in n} == {"train"}


@pytest.mark.parametrize("raw,fragment", [
    ({"grid": {"sampler.name": []}}, "non-empty lists"),
    ({"grid": {"sampler.name": ["pps", "beam"]}}, "cell smollm2-135m-arc_easy-beam-s0"),
    ({"grid": {"sampler.k": [0]}}, "sampler.k"),
    ({"grid": {"sampler.name": ["pps"]}, "overrides": [{"if": {}}]}, "overrides must be"),
])
def test_every_cell_is_validated_first(raw, fragment):
    with pytest.raises(EmreasonError, match=fragment.replace(".", r"\.").replace("[", r"\[")):
        grid.expand(raw)


def test_grid_runs_cells_and_skips_finished_ones(tiny_llama, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(HFBackend, "generate", scripted_generate)
    cfg = tmp_path / "g.yaml"
    cfg.write_text(f"""
iterations: 1
model: {{name: {tiny_llama}}}
data: {{train_size: 6, eval_size: 3}}
generation: {{max_new_tokens: 8, batch_size: 4}}
train: {{epochs: 1, batch_size: 2, lora_r: 2, max_length: 1024}}
eval: {{max_new_tokens: 4}}
grid:
  sampler.name: [none, pps]
""")
    out = tmp_path / "grid"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    first = capsys.readouterr().out
    assert first.count("done in") == 2
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.count("finished earlier") == 2
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
