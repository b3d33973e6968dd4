import pytest

from emreason import grid
from emreason.backends.hf import HFBackend
from emreason.cli import main
from emreason.config import read_yaml
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
    seeded = grid.expand({"grid": {"sampler.name": ["pps"], "data.seed": [0, 1]}})
    assert [(n, c.data.seed) for n, c in seeded] == [("smollm2-135m-arc_easy-pps-s0", 0), ("smollm2-135m-arc_easy-pps-s1", 1)]


@pytest.mark.parametrize("raw,fragment", [
    ({"grid": {"sampler.name": []}}, "non-empty lists"),
    ({"grid": {"sampler.name": ["pps", "beam"]}}, "cell smollm2-135m-arc_easy-beam-s0"),
    ({"grid": {"sampler.k": [0]}}, "sampler.k"),
    ({"grid": {"sampler.name": ["pps"]}, "overrides": [{"if": {}}]}, "overrides must be"),
])
def test_every_cell_is_validated_first(raw, fragment):
    with pytest.raises(EmreasonError, match=fragment.replace(".", r"\.").replace("[", r"\[")):
        grid.expand(raw)


@pytest.mark.parametrize("grid_line,fragment", [
    ("model.name: [smollm2-135m, no-such-alias]", "grid cell no-such-alias-.*unknown model 'no-such-alias'"),
    ("data.eval_split: [test, bogus]", r"grid cell .*eval_splitbogus: data file .*bogus\.jsonl not found"),
])
def test_a_bad_cell_stops_the_grid_before_any_cell_runs(tmp_path, grid_line, fragment):
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text(f'{{"question": "Q {split}?", "choices": ["a", "b"], "answer": "A"}}\n')
    cfg = tmp_path / "g.yaml"
    cfg.write_text(f"""
iterations: 1
data: {{dataset: "{tmp_path / '{split}.jsonl'}", train_size: 1, eval_size: 1}}
grid:
  {grid_line}
""")
    out = tmp_path / "grid"
    with pytest.raises(EmreasonError, match=fragment) as err:
        grid.run_grid(read_yaml(cfg), out, str(cfg))
    assert "no cell was started" in str(err.value)
    assert not out.exists() or not any(out.iterdir())


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
    assert main(["status", str(out), "--config", str(cfg)]) == 0
    listing = capsys.readouterr().out
    assert "2/2 done" in listing and "smollm2" not in listing and listing.count(" done ") == 2
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0


def test_status_reads_phase_and_progress_from_the_files(tmp_path, capsys):
    """A study watched while another process runs it: the phase and how far into it, from files only."""
    import json

    from emreason.config import RunConfig

    raw = {"iterations": 2, "data": {"train_size": 8, "eval_size": 6}, "grid": {"sampler.name": ["none", "star", "pps"]}}
    (cfg_path := tmp_path / "g.yaml").write_text(json.dumps(raw))
    out = tmp_path / "runs"
    cells = dict(grid.expand(raw))
    star, pps = out / "smollm2-135m-arc_easy-star-s0", out / "smollm2-135m-arc_easy-pps-s0"
    for d in (star, pps):
        (d / "iter_1" / "logs" / "checkpoint-10").mkdir(parents=True)
        (d / "run.json").write_text(json.dumps({"config": cells[d.name].model_dump(mode="json")}))
    (star / "state.json").write_text(json.dumps({"iteration": 1, "phase": "estep"}))
    (star / "iter_1" / "estep.json").write_text(json.dumps({"estep_seconds": 900}))  # an earlier, finished E-step
    (star / "iter_1" / "samples.jsonl").write_text("".join(
        json.dumps({"question_id": q, "stage": s}) + "\n" for q, s in [("a", "plain"), ("a", "rationalize"), ("b", "plain")])
        + json.dumps({"chunk_done": 0}) + "\n")
    (pps / "state.json").write_text(json.dumps({"iteration": 1, "phase": "mstep"}))
    (pps / "metrics.jsonl").write_text(json.dumps({"iteration": 0, "eval_accuracy": 0.25, "eval_seconds": 1800,
                                                        "eval_machine": "machine A"}) + "\n")
    (pps / ".lock").write_text("some-other-host 1")  # a lock held elsewhere is not "running here"
    rows = {r["name"]: r for r in grid.study_status([str(out)], str(cfg_path))}
    assert rows["smollm2-135m-arc_easy-none-s0"]["state"] == "not started"
    assert (rows[star.name]["state"], rows[star.name]["progress"]) == ("iteration 1: E-step", "2/8 questions sampled")
    assert (rows[pps.name]["state"], rows[pps.name]["progress"]) == ("iteration 1: M-step", "checkpoint at step 10")
    assert rows[pps.name]["accuracy"] == 0.25 and rows[pps.name]["hours"] == 0.5 and not rows[pps.name]["running"]
    assert RunConfig.model_validate(json.loads((pps / "run.json").read_text())["config"]).sampler.name == "pps"
    assert rows[pps.name]["machines"] == ["machine A"] and rows[star.name]["machines"] == []
    assert main(["status", str(out), "--config", str(cfg_path)]) == 0
    printed = capsys.readouterr().out
    assert "0/3 done" in printed and "machine A (1 cells); 1 cells record none" in printed
    (pps / "state.json").write_text(json.dumps({"iteration": 1, "phase": "eval"}))
    (pps / "iter_1" / "eval").mkdir()
    (pps / "iter_1" / "eval" / "predictions.partial.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}"}) + "\n" for i in range(4)) + json.dumps({"chunk_done": 0}) + "\n")
    assert grid.cell_status(pps)["progress"] == "4/6 questions answered"
    # the running iteration's finished phases count before its metrics line is written
    (pps / "iter_1" / "train_stats.json").write_text(json.dumps({"train_seconds": 3600}))
    (pps / "iter_1" / "estep.json").write_text(json.dumps({"estep_seconds": 1800, "estep_machine": "machine A + machine B"}))
    assert grid.cell_status(pps)["hours"] == 2.0 and rows[star.name]["hours"] == 0.25
    assert grid.cell_status(pps)["machines"] == ["machine A", "machine B"]  # a phase resumed on another machine
    # hours left: from finished cells of the same model and sampler; else another model's, scaled by
    # the ratio of the two models' cells of samplers both have finished
    finished = dict(rows[star.name], name="other-star", state="done", hours=3.0)
    small = dict(rows[pps.name], name="small-none", model="qwen2.5-coder-0.5b", sampler="none", state="done", hours=0.1)
    big_none = dict(small, name="big-none", model="qwen2.5-coder-1.5b", hours=0.4)
    big_star = dict(big_none, name="big-star", sampler="star", hours=4.0)
    small_star = dict(small, name="small-star", sampler="star", state="not started", hours=0.0)
    left = grid.hours_left([finished, rows[star.name], rows[pps.name], rows["smollm2-135m-arc_easy-none-s0"],
                            dict(rows[pps.name], name="another-model", model="qwen2.5-coder-0.5b"),
                            small, big_none, big_star, small_star])
    # smollm2's none: 1.5B's none (0.4 h) x the two models' star ratio (3.0 / 4.0)
    assert left == {star.name: 2.75, pps.name: None, "smollm2-135m-arc_easy-none-s0": pytest.approx(0.3),
                    "another-model": None, "small-star": 1.0}
    # a dataset whose finished cells take twice the other datasets' (same model and sampler) scales
    # the estimate of its unfinished cells, and the others' by the inverse
    rows_d = [dict(big_none, name="b-arc", dataset="arc_easy", hours=0.5), dict(big_none, name="b-mmlu", dataset="mmlu", hours=1.0),
              dict(big_star, name="s-arc", dataset="arc_easy", hours=3.0),
              dict(small_star, name="s-mmlu", model="qwen2.5-coder-1.5b", dataset="mmlu"),
              dict(small_star, name="s-obqa", model="qwen2.5-coder-1.5b", dataset="openbookqa")]
    factors = grid.dataset_factors(rows_d)
    assert factors == {"mmlu": pytest.approx(2 ** 0.5), "arc_easy": pytest.approx(2 ** -0.5)}
    left = grid.hours_left(rows_d)  # star took 3.0 h on arc_easy: twice that on mmlu; an unmeasured dataset sits between
    assert left == {"s-mmlu": pytest.approx(6.0), "s-obqa": pytest.approx(3.0 * 2 ** 0.5)}


def test_status_scales_a_model_by_how_this_machine_ran_its_cells(monkeypatch, capsys):
    """A study resumed on a slower machine: a model's cells finished here, against what the other
    machines' cells predict for them, scale its unfinished cells' estimates; a model with no such
    comparison keeps its figures, and a cell that ran here does not skew the others' means."""
    here = "slow CPU, 2 CPUs"
    cell = {"model": "qwen2.5-coder-1.5b", "sampler": "star", "dataset": "arc_easy", "state": "done", "machines": [],
            "accuracy": None, "iteration": None, "progress": "", "running": False}
    rows = [dict(cell, name="star-elsewhere", hours=3.0),
            dict(cell, name="star-here", hours=6.0, machines=[here]),            # twice the 3.0 h predicted
            dict(cell, name="star-left", state="not started", hours=0.0),
            dict(cell, name="star-half", state="iteration 1: M-step", hours=1.0, machines=[here]),
            dict(cell, name="small-none-here", model="qwen2.5-coder-0.5b", sampler="none", hours=0.2, machines=[here]),
            dict(cell, name="small-none-left", model="qwen2.5-coder-0.5b", sampler="none", state="not started", hours=0.0)]
    assert grid.machine_scales(rows, here) == {"qwen2.5-coder-1.5b": (2.0, 1)}  # the 0.5B has nothing elsewhere to compare
    left, factors, scales = grid.estimate(rows, here)
    # 3.0 h elsewhere x 2.0 here (not the 4.5 h mean of both machines' cells), less what a cell recorded;
    # the 0.5B's finished cell here stays its model's mean
    assert left == {"star-left": 6.0, "star-half": 5.0, "small-none-left": pytest.approx(0.2)}
    assert grid.estimate(rows, "another machine")[0]["star-left"] == 4.5  # seen from elsewhere: no scale
    monkeypatch.setattr(grid, "study_status", lambda runs, config: rows)
    monkeypatch.setattr(grid, "machine", lambda: here)
    assert main(["status", "runs"]) == 0
    assert f"this machine ({here}) ran qwen2.5-coder-1.5b's cells in x2.00 the hours" in capsys.readouterr().out
