"""The report from run directories written by the real loop (tiny model, scripted generation)."""

import json

from emreason import loop
from emreason.backends.hf import HFBackend
from emreason.cli import main
from emreason.report import page_samples

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
    samples = page_samples(page)  # gzip + base64 inside the page: about a quarter of the JSON's size
    assert len(page.split('const Z="')[1].split('"')[0]) < len(json.dumps(samples)) / 2
    attempts = [s for d in samples if d["iter"] == 1 for s in d["samples"]]
    assert any(s["accepted"] for s in attempts) and any("Plants need light" in s["text"] for s in attempts)  # the rationales
    tests_rows = [d for d in samples if d["run"].startswith("test answers")]  # and every column's test answers
    verdicts = {s["verdict"] for d in tests_rows for s in d["samples"]}
    assert "correct" in verdicts and verdicts <= {"correct", "wrong", "no answer"}
    # the headline tables, then the plots, then each detailed table folded under its heading
    assert page.index('id="md0"') < page.index("<h2>Plots</h2>") < page.index("<summary>Paired comparisons</summary>")
    assert "<summary>Per iteration</summary>" in page and md.count("\n## ") == page.count("<details>")


def test_report_errors_on_nothing(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "no finished run" in capsys.readouterr().err


def _fake_run(root, sampler, lengths, correct, sampled=(), accepted=(), mode="cot", acc=0.5, preds=None, golds=None,
              seed=None, outputs=None, dataset="arc_easy", model="m", machines=None):
    """A run directory as the loop writes it, with chosen test-time output lengths (and answers)."""
    prefix = "" if (dataset, model) == ("arc_easy", "m") else f"{model}-{dataset}-"
    d = root / (prefix + (sampler if seed is None else f"{sampler}-s{seed}"))
    its = list(range(len(sampled) + 1))
    (d / f"iter_{its[-1]}" / "eval").mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"config": {"sampler": {"name": sampler, "k": 4},
                                                      "data": {"dataset": dataset, "seed": seed or 0}, "model": {"name": model}}}))
    metrics = []
    for it in its:
        m = {"iteration": it, "eval_accuracy": acc, "eval_ci_low": min(0.3, acc), "eval_ci_high": max(0.7, acc), "eval_n": len(lengths),
             "eval_parse_rate": 1.0, "eval_mean_rationale_tokens": sum(lengths) / len(lengths), "eval_mode": mode}
        if it:
            m.update(sampled_tokens=sampled[it - 1], accepted=accepted[it - 1], mean_rationale_tokens=30.0,
                     estep_seconds=10.0, train_seconds=20.0)
            if machines:
                m.update(estep_machine=machines[it - 1], train_machine=machines[it - 1].split(" + ")[-1])
        metrics.append(m)
    (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    rows = [{"id": f"q{i}", "tokens": n, "correct": c} for i, (n, c) in enumerate(zip(lengths, correct))]
    for r, p, g in zip(rows, preds or [], golds or []):
        r.update(pred=p, gold=g)
    for r, o in zip(rows, outputs or []):
        r["output"] = o
    (d / f"iter_{its[-1]}" / "eval" / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_length_tests_and_costs(tmp_path):
    from emreason.report import cost_rows, find_runs, length_tests, markdown, table

    base = [40 + (i * 7) % 23 for i in range(30)]
    _fake_run(tmp_path, "star", base, [i % 2 == 0 for i in range(30)], sampled=(1000, 600), accepted=(10, 20),
              machines=("cpu A", "cpu A"))
    _fake_run(tmp_path, "pps", [n - 5 - i % 3 for i, n in enumerate(base)], [i % 3 == 0 for i in range(30)],
              sampled=(500, 400), accepted=(10, 15), machines=("cpu A", "cpu A + cpu B"))
    runs = find_runs([str(tmp_path)])
    (t,) = [t for t in length_tests(runs) if (t["a"], t["b"]) == ("star", "pps")]
    assert t["n"] == 30 and t["median_diff"] == -6 and t["p_value"] < 1e-4 and t["mean_b"] < t["mean_a"]
    costs = {c["column"]: c for c in cost_rows(runs)}
    assert costs["star"]["sampled_tokens_total"] == 1600 and costs["star"]["sampled_per_accepted"] == 1600 / 30
    assert costs["pps"]["accepted_total"] == 25 and costs["pps"]["estep_seconds"] == 20.0
    assert costs["none"]["sampled_tokens_total"] is None  # the base column has no E-step
    assert costs["star"]["machines"] == ["cpu A"] and costs["pps"]["machines"] == ["cpu A", "cpu B"]
    md = markdown(table(runs), [], runs, list(costs.values()))
    assert "the phase: cpu A (2 columns); cpu B (1 columns); 1 columns record none" in md


def test_base_column_is_the_zero_shot_cot_evaluation(tmp_path):
    """A `direct` run's iteration 0 answers without a rationale: it must not stand in for the base
    column, although its directory sorts first."""
    from emreason.report import find_runs, table

    _fake_run(tmp_path, "direct", [1] * 12, [True] * 12, sampled=(0,), accepted=(0,), mode="direct", acc=0.26)
    _fake_run(tmp_path, "none", [50] * 12, [False] * 12, acc=0.157)
    _fake_run(tmp_path, "pps", [50] * 12, [False] * 12, acc=0.157)  # started: only its iteration 0 so far
    (row,) = table(find_runs([str(tmp_path)]))
    assert row["none"][0] == 0.157 and row["direct"][0] == 0.26
    assert row["base_direct"][0] == 0.26 and row["base_direct"][4] == 0  # its own column: the base answering directly
    assert "pps" not in row  # no column until a trained iterate is evaluated


def test_answered_accuracy_letter_habits_and_majority_baseline(tmp_path):
    """Format and letter habits are reported beside accuracy: accuracy among answered questions,
    the most frequent answer's share, and what always answering the commonest gold letter scores."""
    from emreason.report import cost_rows, find_runs, letter_baselines, markdown, table

    golds = list("ABBBCDAB")  # B is the commonest gold letter: 4 of 8
    _fake_run(tmp_path, "none", [50] * 8, [False] * 8, preds=[None, None, "A", "A", "A", "A", "C", None], golds=golds)
    preds = list("BBBBBBBB")  # a letter habit: always B
    _fake_run(tmp_path, "pps", [50] * 8, [p == g for p, g in zip(preds, golds)], sampled=(100,), accepted=(4,),
              preds=preds, golds=golds)
    runs = find_runs([str(tmp_path)])
    costs = {c["column"]: c for c in cost_rows(runs)}
    assert costs["none"]["answered_accuracy"] == 0.0 and costs["none"]["top_pred"] == "A"
    assert costs["none"]["top_pred_share"] == 4 / 8  # of all questions, unanswered included
    assert costs["pps"]["answered_accuracy"] == 4 / 8 and costs["pps"]["top_pred_share"] == 1.0
    (b,) = letter_baselines(runs)
    assert (b["letter"], b["accuracy"], b["n"]) == ("B", 0.5, 8)
    md = markdown(table(runs), [], runs, list(costs.values()), [], [b])
    assert "(B) 0.500 (n=8)" in md and "| 0.500 | (B) 1.00 |" in md


def test_goes_through_options():
    from emreason.report import goes_through_options

    elimination = ("The question asks about texture. Now, let's analyze each option:\n\n(A) Gray - a color.\n\n"
                   "(B) Warm - a temperature.\n\n(C) Long - a length.\n\n(D) Soft - a texture.\n\nThe answer is (D).")
    assert goes_through_options(elimination)
    assert goes_through_options("- **A.** no\n- **B.** no\n- **C.** yes\nThe answer is (C).")
    assert not goes_through_options("Plants need light to make food. (A) and (B) are animals, (C) is not.\nThe answer is (D).")
    assert not goes_through_options("(A) is wrong.\n(B) is right.\nThe answer is (B).")  # two options weighed


def test_iteration_tests_compare_each_iterate_with_the_one_before(tmp_path):
    from emreason.report import find_runs, iteration_tests

    d = tmp_path / "pps"
    _fake_run(tmp_path, "pps", [50] * 10, [True] * 8 + [False] * 2, sampled=(100, 100), accepted=(5, 5))
    for it, correct in ((0, [False] * 10), (1, [True] * 6 + [False] * 4)):
        (d / f"iter_{it}" / "eval").mkdir(parents=True)
        (d / f"iter_{it}" / "eval" / "predictions.jsonl").write_text(
            "".join(json.dumps({"id": f"q{i}", "tokens": 50, "correct": c}) + "\n" for i, c in enumerate(correct)))
    tests = iteration_tests(find_runs([str(tmp_path)]))
    assert [(t["from"], t["to"], t["only_a"], t["only_b"]) for t in tests] == [(0, 1, 0, 6), (1, 2, 0, 2)]
    assert tests[0]["diff"] == 0.6 and tests[0]["p_value"] < 0.05 and tests[1]["p_value"] == 0.5


def test_matched_tests_compare_columns_at_the_same_iteration(tmp_path):
    """PPS ahead of STaR at iteration 1 and behind at iteration 2: the final-iterate test shows only
    the second; the matched tests show both, and a column with one iteration meets the others at 1."""
    from emreason.report import find_runs, markdown, matched_tests

    def evals(sampler, per_iteration):
        for it, correct in enumerate(per_iteration, start=1):
            (tmp_path / sampler / f"iter_{it}" / "eval").mkdir(parents=True, exist_ok=True)
            (tmp_path / sampler / f"iter_{it}" / "eval" / "predictions.jsonl").write_text(
                "".join(json.dumps({"id": f"q{i}", "tokens": 50, "correct": c}) + "\n" for i, c in enumerate(correct)))

    for s in ("star", "pps"):
        _fake_run(tmp_path, s, [50] * 10, [False] * 10, sampled=(100, 100), accepted=(5, 5))
    _fake_run(tmp_path, "direct", [5] * 10, [False] * 10, sampled=(0,), accepted=(10,), mode="direct")
    evals("star", [[True] * 2 + [False] * 8, [True] * 9 + [False]])
    evals("pps", [[True] * 8 + [False] * 2, [True] * 3 + [False] * 7])
    evals("direct", [[True] * 5 + [False] * 5])
    tests = matched_tests(find_runs([str(tmp_path)]))
    got = {(t["iteration"], t["a"], t["b"]): (t["only_a"], t["only_b"]) for t in tests}
    assert got == {(1, "direct", "star"): (3, 0), (1, "direct", "pps"): (0, 3),
                   (1, "star", "pps"): (0, 6), (2, "star", "pps"): (6, 0)}
    assert "| arc_easy | m | 2 | star | pps | 6 | 0 |" in markdown([], [], [], mtests=tests)


def test_a_p_value_that_underflows_is_not_printed_as_zero():
    from emreason.report import markdown

    t = {"dataset": "arc_easy", "model": "m", "a": "star", "b": "pps", "n": 300, "mean_a": 129.1, "mean_b": 257.6,
         "median_diff": 135.0, "p_value": 0.0}
    assert "| +135 | < 1e-300 |" in markdown([], [], [], ltests=[t])


def test_a_column_with_several_seeds_is_averaged_not_dropped(tmp_path):
    """A grid with `data.seed: [0, 1, 2]` gives three runs per column: the table averages them (and
    says so), comparisons use all of them, and nothing is silently left out."""
    from emreason.report import cost_rows, find_runs, markdown, paired_tests, table

    n = 40
    star = [i < 20 for i in range(n)]  # 0.5
    _fake_run(tmp_path, "none", [80] * n, [i < 10 for i in range(n)], acc=0.25)
    _fake_run(tmp_path, "star", [60] * n, star, sampled=(1000,), accepted=(10,), acc=0.5)
    seeds = {0: [i < 30 for i in range(n)], 1: [i < 34 for i in range(n)], 2: [i < 26 for i in range(n)]}
    for s, correct in seeds.items():
        _fake_run(tmp_path, "pps", [40 + s] * n, correct, sampled=(500 + 100 * s,), accepted=(10,),
                  acc=sum(correct) / n, seed=s, machines=(f"cpu {s % 2}",))
    runs = find_runs([str(tmp_path)])
    (row,) = table(runs)
    acc, lo, hi, n_q, it, k, sd = row["pps"]
    assert (n_q, it, k) == (n, 1, 3) and abs(acc - 0.75) < 1e-9 and lo < acc < hi
    assert abs(sd - 0.1) < 1e-9  # seed accuracies 0.75, 0.85, 0.65
    assert row["star"][5:] == (1, None)
    (t,) = [t for t in paired_tests(runs) if (t["a"], t["b"]) == ("star", "pps")]
    assert t["test"].startswith("wilcoxon") and (t["seeds_a"], t["seeds_b"]) == (1, 3)
    assert abs(t["diff"] - 0.25) < 1e-9 and t["only_a"] == 0 and t["only_b"] == 14 and t["p_value"] < 0.001
    assert t["diff_ci_low"] < 0.25 < t["diff_ci_high"]
    costs = {c["column"]: c for c in cost_rows(runs)}
    assert costs["pps"]["seeds"] == 3 and costs["pps"]["sampled_tokens_total"] == 600
    assert costs["pps"]["test_rationale_tokens"] == 41
    assert costs["pps"]["machines"] == ["cpu 0", "cpu 1"]  # every seed's machine, not the first seed's
    md = markdown(table(runs), paired_tests(runs), runs)
    assert "3 seeds, sd 0.100" in md and "Wilcoxon signed-rank on seed-averaged correctness" in md
    from emreason.report import report

    report([str(tmp_path)], tmp_path / "out")  # plots, CSV and the browser with every seed's answers
    assert "pps_seeds,pps_seed_sd" in (tmp_path / "out" / "table.csv").read_text()
    stages = {s["stage"] for d in page_samples((tmp_path / "out" / "report.html").read_text()) for s in d["samples"]}
    assert "PPS (it 1, s2)" in stages


def test_lenient_reading_is_a_sensitivity_check_beside_accuracy(tmp_path):
    """An untrained small model restates the options, then answers: the reader calls "(A) ... The
    answer is (C)" ambiguous. costs.json says what the same outputs score when the last answer line
    decides, so a gain over the base can be told apart from the reader's strictness."""
    from emreason.report import cost_rows, find_runs, last_answer_line, paired_tests

    assert last_answer_line("(A) cat\n(B) dog\n(C) fish\n\nThe answer is (C).") == "C"
    assert last_answer_line("The answer is (B). No wait, the answer is (D)") == "D"
    assert last_answer_line("(A) because plants need light.") is None  # an opening label alone is not an answer line
    assert last_answer_line("The answer is (B). Counting again, the answer is 13.") == "13"  # no choices: as written
    outputs = ["(A) x\n(B) y\nThe answer is (B).", "(A) x\nThe answer is (C).", "The answer is (A).", "(D) no answer line"]
    golds, preds = ["B", "A", "A", "D"], [None, None, "A", "D"]
    _fake_run(tmp_path, "none", [50] * 4, [p == g for p, g in zip(preds, golds)], preds=preds, golds=golds,
              outputs=outputs)
    _fake_run(tmp_path, "pps", [50] * 4, [True, False, True, True], sampled=(100,), accepted=(4,),
              preds=["B", "C", "A", "D"], golds=golds, outputs=["The answer is (B)."] * 4)
    runs = find_runs([str(tmp_path)])
    costs = {c["column"]: c for c in cost_rows(runs)}
    assert costs["none"]["lenient_accuracy"] == 3 / 4  # the first now read as (B), right; the second as (C), wrong
    assert costs["pps"]["lenient_accuracy"] == 3 / 4  # answers the reader took are not re-read
    (t,) = paired_tests(runs)
    assert (t["only_a"], t["only_b"], t["diff"]) == (0, 1, 0.25) and t["lenient_diff"] == 0.0


def test_claims_are_checked_per_family_pooled_over_datasets(tmp_path):
    """The reference claims, read off the rows where rejection, STaR and PPS all finished: a gap
    too small to be significant on one dataset's 40 questions is significant on two datasets'
    80 (discordant pairs add up), models group into their family, and the verdict follows the
    stated rule — including 'mixed' when PPS is longer than one column and shorter than another."""
    from emreason.report import claims, find_runs, markdown, report, table

    n = 40
    correct = {"rejection": set(range(10)) | {30}, "star": set(range(16)), "pps": set(range(1, 22))}
    lengths = {"rejection": 60, "star": 50, "pps": 40}
    for ds in ("arc_easy", "arc_challenge"):  # per dataset: STaR − rejection 6 vs 1, PPS − STaR 6 vs 1 (p = 0.125)
        for c in correct:
            _fake_run(tmp_path, c, [lengths[c] + i % 3 for i in range(n)], [i in correct[c] for i in range(n)],
                      sampled=(100,), accepted=(10,), dataset=ds, model="qwen2.5-coder-1.5b")
    for c in correct:  # the smaller Qwen: all three alike; SmolLM2: PPS between STaR and rejection in length
        _fake_run(tmp_path, c, [50 + i % 5 for i in range(n)], [i < 20 for i in range(n)], sampled=(100,),
                  accepted=(10,), model="qwen2.5-coder-0.5b")
        _fake_run(tmp_path, c, [{"rejection": 60, "star": 30, "pps": 45}[c] + i % 4 for i in range(n)],
                  [i < 10 for i in range(n)], sampled=(100,), accepted=(10,), model="smollm2-135m")
    _fake_run(tmp_path, "pps", [40] * n, [True] * n, sampled=(100,), accepted=(10,), dataset="mmlu",
              model="smollm2-135m")  # a row without rejection and STaR is not part of the claims
    runs = find_runs([str(tmp_path)])
    by = {(c["scope"], c["name"]): c for c in claims(runs)}
    assert set(by) == {("family", "llama"), ("family", "qwen2"), ("model", "qwen2.5-coder-0.5b"),
                       ("model", "qwen2.5-coder-1.5b")}  # a family's only model gets no line of its own
    big = by[("model", "qwen2.5-coder-1.5b")]
    assert len(big["rows"]) == 2 and big["n"] == 80
    t = big["accuracy_tests"]["star_vs_rejection"]
    assert (t["only_a"], t["only_b"], t["n"]) == (2, 12, 80) and t["p_value"] < 0.05
    assert big["order_verdict"] == "supported" and big["length_verdict"] == "supported"
    assert abs(big["accuracy"]["pps"] - 21 / 40) < 1e-9
    assert by[("model", "qwen2.5-coder-0.5b")]["order_verdict"] == "not supported"
    assert by[("family", "qwen2")]["n"] == 120 and by[("family", "qwen2")]["order_verdict"] == "supported"
    llama = by[("family", "llama")]
    assert llama["rows"] == [["arc_easy", "smollm2-135m"]] and llama["length_verdict"] == "mixed"
    assert llama["length_tests"]["pps_vs_star"]["median_diff"] > 0 > llama["length_tests"]["pps_vs_rejection"]["median_diff"]
    assert big["baseline_tests"]["pps_vs_none"] is None  # no base column among these runs
    md = markdown(table(runs), [], runs, claim_rows=claims(runs))
    assert "| qwen2 family (qwen2.5-coder-0.5b, qwen2.5-coder-1.5b) | 3 | 120 |" in md
    report([str(tmp_path)], tmp_path / "out")
    assert json.loads((tmp_path / "out" / "claims.json").read_text())[0]["name"] == "llama"


def test_a_run_still_going_is_listed_apart_not_compared(tmp_path):
    """Partial cells are committed (a study outlives machines through its files): a run that has
    evaluated iteration 1 of 2 must not stand in the table, or in a test, as a final iterate."""
    from emreason.report import find_runs, markdown, paired_tests, table, unfinished

    n = 20
    _fake_run(tmp_path, "none", [30] * n, [i % 2 == 0 for i in range(n)])
    _fake_run(tmp_path, "star", [30] * n, [i % 3 == 0 for i in range(n)], sampled=(100, 100), accepted=(5, 5))
    _fake_run(tmp_path, "pps", [30] * n, [True] * n, sampled=(100,), accepted=(5,))
    for name, its in (("star", 2), ("pps", 2)):
        meta = json.loads((tmp_path / name / "run.json").read_text())
        meta["config"]["iterations"] = its
        (tmp_path / name / "run.json").write_text(json.dumps(meta))
    runs = find_runs([str(tmp_path)])
    rows = table(runs)
    assert "star" in rows[0] and "pps" not in rows[0]
    assert {(t["a"], t["b"]) for t in paired_tests(runs)} == {("none", "star")}
    assert [(u["run"], u["planned"], list(u["evaluated"])) for u in unfinished(runs)] == [("pps", 2, [0, 1])]
    assert "Still running, so not in the table or the tests" in markdown(rows, [], runs) and "pps: it 0 0.500, it 1 0.500 (of 2)" in markdown(rows, [], runs)


def test_plots_draw_the_base_as_a_reference_and_say_when_a_panel_is_empty(tmp_path, monkeypatch):
    """Accuracy plots carry the untrained model's CoT accuracy as a dashed line (what training must
    beat); a row with nothing trained yet says so instead of drawing blank axes."""
    import emreason.report as report

    _fake_run(tmp_path, "none", [50] * 12, [False] * 12, acc=0.157)
    _fake_run(tmp_path, "pps", [50] * 12, [True] * 12, sampled=(500,), accepted=(6,), acc=0.4)
    _fake_run(tmp_path, "none", [50] * 12, [False] * 12, acc=0.2, dataset="mmlu")  # a row with only its base
    _fake_run(tmp_path, "rejection", [50] * 12, [True] * 12, sampled=(300,), accepted=(4,), acc=0.3, dataset="openbookqa")
    for m in (tmp_path / "pps" / "metrics.jsonl", tmp_path / "m-openbookqa-rejection" / "metrics.jsonl"):
        rows = [json.loads(l) for l in m.read_text().splitlines()]  # an E-step's acceptance: iteration 1 on
        m.write_text("".join(json.dumps({**r, **({"accept_rate": 0.5} if r["iteration"] else {})}) + "\n" for r in rows))
    figs = {}
    monkeypatch.setattr(report, "_png", lambda fig: figs.setdefault(len(figs), fig) and b"")
    report.plots(report.find_runs([str(tmp_path)]))
    acc, accept = figs[0], figs[1]  # accuracy vs iteration, acceptance rate vs iteration
    panels = {ax.get_title(): ax for ax in acc.axes if ax.get_visible()}
    easy, mmlu = panels["m · arc_easy"], panels["m · mmlu"]
    assert [round(l.get_ydata()[0], 3) for l in easy.lines if l.get_linestyle() == "--"] == [0.157]
    assert [round(l.get_ydata()[0], 3) for l in mmlu.lines if l.get_linestyle() == "--"] == [0.2]
    said = {ax.get_title(): [t.get_text() for t in ax.texts] for ax in accept.axes if ax.get_visible()}
    assert said["m · arc_easy"] == [] and said["m · mmlu"][0].startswith("nothing to plot yet")
    # one colour per sampler in every panel, whichever other samplers a row has
    from matplotlib.colors import to_hex

    (pps,) = [c.lines[0] for c in easy.containers if c.get_label() == "PPS"]  # errorbar containers
    (rej,) = [c.lines[0] for c in panels["m · openbookqa"].containers if c.get_label() == "rejection (k=4)"]
    assert to_hex(pps.get_color()) == to_hex("C1") and to_hex(rej.get_color()) == to_hex("C2")
    (obqa,) = [ax for ax in accept.axes if ax.get_title() == "m · openbookqa"]
    assert obqa.get_xlim() == (0, 2)  # one iteration so far: ticks 0-2, not 0.99-1.01
