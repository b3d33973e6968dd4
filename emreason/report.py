"""Tables, plots, paired tests and one self-contained HTML report from run directories.

`emreason report RUN... --out DIR` reads only what runs wrote (run.json, metrics.jsonl, the
per-iteration predictions and sample logs), so a report can be regenerated from committed results
at any time. The table follows the reference paper: rows dataset x model, columns base zero-shot
CoT, direct fine-tuning, rejection, STaR, PPS, each the final iterate's accuracy with its 95%
interval, plus the untrained model answering directly (a direct run's iteration 0). Paired
comparisons use McNemar's exact test on the questions both runs answered.

A cell run with several seeds (`data.seed`) is one column of several runs: its accuracy is the mean
over seeds of each question's correctness, with a 95% interval over questions and the spread across
seeds beside it, and comparisons involving it use the Wilcoxon signed-rank test on the per-question
differences of seed-averaged correctness (with one seed each that reduces to McNemar's setting, and
McNemar's exact test is used).
"""

from __future__ import annotations

import base64
import csv
import gzip
import html
import io
import json
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from .errors import EmreasonError
from .evaluate import mcnemar
from .models import ALIASES, recorded_machines
from .prompts import find_commitments
from .store import atomic_write_text, read_json, read_rows

# A line that opens with an option label: "(A) Gray - ...", "- **B.** ...", "2. (C): ...".
_OPTION_LINE = re.compile(r"^\s*(?:[-*]\s*|\d+\.\s*)?\**\s*(?:option\s*|choice\s*)?\(?([A-J])\)?\s*[).:\-]", re.M | re.I)


def goes_through_options(text: str) -> bool:
    """Whether a rationale weighs the options one by one (lines opening with three or more distinct
    option labels). A heuristic, for one question the length comparison raises: is a longer
    rationale a different style of reasoning (elimination) or more of the same?"""
    return len({m.upper() for m in _OPTION_LINE.findall(text)}) >= 3


def last_answer_line(text: str) -> str | None:
    """The letter of an output's last answer line ("The answer is (B)", \\boxed{B}), ignoring an
    opening "(A)" and earlier answer lines. A lenient reading, for a sensitivity check only: the
    reader (`prompts.extract_answer`) calls "(A) ... The answer is (C)" ambiguous, and an untrained
    small model that restates the options before answering loses those questions to it."""
    no_choices = SimpleNamespace(labels=[], letters="", texts=[])  # a label is read as written
    lines = [c for c in find_commitments(text or "", no_choices) if c.kind != "answer_first"]
    return lines[-1].letter if lines else None


COLUMNS = ["none", "base_direct", "direct", "rejection", "star", "pps"]
TITLES = {"none": "base (zero-shot CoT)", "base_direct": "base (direct answer)", "direct": "direct FT",
          "rejection": "rejection", "star": "STaR", "pps": "PPS"}
# One colour per column in every panel and plot, so a sampler is recognised across rows at a glance.
COLORS = {"none": "0.5", "base_direct": "0.3", "direct": "C0", "rejection": "C2", "star": "C3", "pps": "C1"}
MARKERS = "osD^v"  # a column's seeds: same colour, one marker each
TRAINED = ("rejection", "star", "pps")  # the columns an E-step trained: the ones with sampling costs
BASES = ("none", "base_direct")  # the untrained model, reasoning and answering directly


@dataclass
class Run:
    path: Path
    config: dict
    metrics: list[dict]
    name: str = field(init=False)

    def __post_init__(self):
        self.name = self.path.name

    @property
    def sampler(self) -> str:
        return self.config["sampler"]["name"]

    @property
    def seed(self) -> int:
        return self.config["data"].get("seed") or 0

    @property
    def key(self) -> tuple[str, str]:
        return self.config["data"]["dataset"], self.config["model"]["name"]

    @property
    def label(self) -> str:
        s = self.config["sampler"]
        return f"rejection (k={s['k']})" if s["name"] == "rejection" else TITLES.get(s["name"], s["name"])

    def prediction_rows(self, iteration: int) -> list[dict]:
        return read_rows(self.path / f"iter_{iteration}" / "eval" / "predictions.jsonl")

    def predictions(self, iteration: int) -> dict[str, bool]:
        return {r["id"]: bool(r["correct"]) for r in self.prediction_rows(iteration)}

    def lenient_predictions(self, iteration: int) -> dict[str, bool]:
        """Correctness with the outputs the reader finds no answer in read by their last answer line."""
        return {r["id"]: _lenient_correct(r) for r in self.prediction_rows(iteration)}

    def output_tokens(self, iteration: int) -> dict[str, int]:
        return {r["id"]: int(r["tokens"]) for r in self.prediction_rows(iteration)}

    def samples(self, iteration: int) -> list[dict]:
        return [r for r in read_rows(self.path / f"iter_{iteration}" / "samples.jsonl") if "chunk_done" not in r]

    @property
    def final(self) -> dict:
        return self.metrics[-1]

    @property
    def planned(self) -> int | None:
        """The last iteration this run will evaluate (None when its config does not say)."""
        its = self.config.get("iterations")
        return 0 if self.sampler == "none" else 1 if self.sampler == "direct" else its

    @property
    def finished(self) -> bool:
        return self.planned is None or self.final["iteration"] >= self.planned


def find_runs(paths: list[str]) -> list[Run]:
    runs = []
    for p in map(Path, paths):
        if not p.exists():
            raise EmreasonError(f"{p} not found: pass run directories or folders that hold them")
        candidates = [p] if (p / "run.json").is_file() else sorted(x.parent for x in p.glob("*/run.json"))
        candidates += [] if candidates else sorted(x.parent for x in p.glob("*/*/run.json"))
        for c in candidates:
            metrics = read_rows(c / "metrics.jsonl")
            if metrics:
                runs.append(Run(c, read_json(c / "run.json")["config"], metrics))
    if not runs:
        raise EmreasonError(f"no finished run (run.json with metrics.jsonl) under {', '.join(paths)}")
    return runs


def unfinished(runs: list[Run]) -> list[dict]:
    """Runs still going: their evaluated iterates so far, kept out of the table and the tests
    (which compare final iterates only) but shown, so that committed partial cells are visible."""
    return [{"run": r.name, "dataset": r.key[0], "model": r.key[1], "sampler": r.sampler, "planned": r.planned,
             "evaluated": {m["iteration"]: m["eval_accuracy"] for m in r.metrics}} for r in runs if not r.finished]


def _fmt(acc: float, lo: float, hi: float) -> str:
    return f"{acc:.3f} [{lo:.3f}, {hi:.3f}]"


def table(runs: list[Run]) -> list[dict]:
    """One row per (dataset, model): each column's final-iteration accuracy with its interval, as
    (accuracy, ci_low, ci_high, n, iteration, seeds, sd across seeds)."""
    from scipy.stats import ttest_1samp

    rows = []
    for key, g in _columns(runs).items():
        row = {"dataset": key[0], "model": key[1]}
        for c, entries in g.items():
            it = max(i for _, i in entries)
            if len(entries) == 1:
                run = entries[0][0]
                m = next(x for x in run.metrics if x["iteration"] == it)
                row[c] = (m["eval_accuracy"], m["eval_ci_low"], m["eval_ci_high"], m["eval_n"], it, 1, None)
                continue
            per_q = list(_seed_mean(entries, Run.predictions).values())
            if not per_q:  # the seeds share no evaluated question
                continue
            accs = [next(x for x in r.metrics if x["iteration"] == i)["eval_accuracy"] for r, i in entries]
            acc = sum(per_q) / len(per_q)
            ci = ttest_1samp(per_q, acc).confidence_interval() if len(set(per_q)) > 1 else (acc, acc)
            row[c] = (acc, max(0.0, float(ci[0])), min(1.0, float(ci[1])), len(per_q), it, len(entries), statistics.stdev(accs))
        rows.append(row)
    return rows


Entries = list[tuple[Run, int]]  # one column of a row: (run, iteration compared) per seed


def _columns(runs: list[Run]) -> dict[tuple, dict[str, Entries]]:
    """(dataset, model) -> column -> [(run, iteration compared)], one per seed: final iterates;
    the base is iteration 0."""
    groups: dict[tuple, dict[str, Entries]] = {}
    # The base column is the untrained model's zero-shot CoT evaluation: the `none` runs', else any
    # run's iteration 0 evaluated with rationales (a `direct` run's iteration 0 answers directly).
    for run in sorted(runs, key=lambda r: (r.sampler != "none", r.seed)):
        g = groups.setdefault(run.key, {})
        m0 = run.metrics[0]
        if run.sampler == "none":
            g.setdefault("none", []).append((run, 0))
        elif m0["iteration"] == 0 and m0.get("eval_mode", "cot") == "cot":
            g.setdefault("none", [(run, 0)])
        elif m0["iteration"] == 0 and m0.get("eval_mode") == "direct":
            # the untrained model answering without a rationale: does reasoning help this model at all?
            g.setdefault("base_direct", [(run, 0)])
        # a run still going has no column yet: every column is a final iterate (unfinished(): listed apart)
        if run.sampler != "none" and run.final["iteration"] > 0 and run.finished:
            g.setdefault(run.sampler, []).append((run, run.final["iteration"]))
    return {k: {c: g[c] for c in COLUMNS if c in g} for k, g in groups.items()}


def _seed_mean(entries: Entries, per_question) -> dict[str, float]:
    """Question -> the mean over a column's seeds of `per_question(run, iteration)[question]`, on the
    questions every seed evaluated."""
    maps = [per_question(run, it) for run, it in entries]
    common = set.intersection(*(set(m) for m in maps)) if maps else set()
    return {q: sum(float(m[q]) for m in maps) / len(maps) for q in sorted(common)}


def _mcnemar_on_common(pa: dict[str, bool], pb: dict[str, bool]) -> dict | None:
    """McNemar's exact test of two iterates' correctness on the questions both evaluated."""
    common = sorted(pa.keys() & pb.keys())
    return mcnemar([pa[q] for q in common], [pb[q] for q in common]) if common else None


def _lenient_correct(r: dict) -> bool:
    return bool(r["correct"]) or (not r.get("pred") and r.get("gold") is not None
                                  and last_answer_line(r.get("output")) == r["gold"])


def _compare(ea: Entries, eb: Entries, correct=Run.predictions) -> dict | None:
    """Two columns on the questions both evaluated: McNemar's exact test when each is one run;
    with several seeds, the Wilcoxon signed-rank test on the per-question differences of
    seed-averaged correctness (only_a / only_b count the questions where a / b is ahead), the mean
    difference b − a with a t-interval over questions."""
    return _compare_pooled([(ea, eb)], correct)


def _pooled(pairs: list[tuple[Entries, Entries]], side: int, per_question) -> dict:
    """One side of several rows' column pairs as one map, keyed (row, question): each row's
    questions are its own units."""
    return {(i, q): v for i, pair in enumerate(pairs) for q, v in per_question(pair[side]).items()}


def _compare_pooled(pairs: list[tuple[Entries, Entries]], correct=Run.predictions) -> dict | None:
    """`_compare` over several rows at once (one (a, b) pair of columns per row): discordant pairs
    add up across rows (McNemar) or the per-question differences are pooled (Wilcoxon, when some
    column has several seeds)."""
    if all(len(ea) == 1 and len(eb) == 1 for ea, eb in pairs):
        t = _mcnemar_on_common(*(_pooled(pairs, s, lambda e: correct(*e[0])) for s in (0, 1)))
        return {**t, "test": "mcnemar"} if t else None
    from scipy.stats import ttest_1samp, wilcoxon

    pa, pb = (_pooled(pairs, s, lambda e: _seed_mean(e, correct)) for s in (0, 1))
    common = sorted(pa.keys() & pb.keys())
    if not common:
        return None
    d = [pb[q] - pa[q] for q in common]
    diff = sum(d) / len(d)
    lo, hi = ttest_1samp(d, diff).confidence_interval() if len(set(d)) > 1 else (diff, diff)
    return {"n": len(d), "only_a": sum(x < 0 for x in d), "only_b": sum(x > 0 for x in d),
            "p_value": float(wilcoxon(d).pvalue) if any(d) else 1.0, "diff": diff,
            "diff_ci_low": float(lo), "diff_ci_high": float(hi), "test": "wilcoxon (seed-averaged)",
            "seeds_a": max(len(ea) for ea, _ in pairs), "seeds_b": max(len(eb) for _, eb in pairs)}


def paired_tests(runs: list[Run]) -> list[dict]:
    """McNemar's exact test between every two columns of a (dataset, model) row, final iterates,
    on the questions both evaluated; the base is iteration 0. Each also repeated with the outputs
    read leniently (`lenient_*`: the last answer line decides where the reader finds none)."""
    out = []
    for key, g in _columns(runs).items():
        names = [c for c in COLUMNS if c in g]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                t = _compare(g[a], g[b])
                if t:
                    lt = _compare(g[a], g[b], Run.lenient_predictions)
                    out.append({"dataset": key[0], "model": key[1], "a": a, "b": b, **t,
                                **{f"lenient_{k}": lt[k] for k in ("diff", "diff_ci_low", "diff_ci_high", "p_value")}})
    return out


def iteration_tests(runs: list[Run]) -> list[dict]:
    """Did each EM iteration help? McNemar's exact test of every evaluated iterate against the one
    before it in the same run, on the same test questions (iteration 1 against the base)."""
    out = []
    for run in runs:
        its = [m["iteration"] for m in run.metrics]
        for prev, it in zip(its, its[1:]):
            t = _mcnemar_on_common(run.predictions(prev), run.predictions(it))
            if t:
                out.append({"run": run.name, "dataset": run.key[0], "model": run.key[1], "sampler": run.sampler,
                            "from": prev, "to": it, **t, "test": "mcnemar"})
    return out


def matched_tests(runs: list[Run]) -> list[dict]:
    """Two trained columns of a row compared at the same EM iteration k (McNemar's exact test),
    for every k both reached. The final-iterate tests answer "which column ends best"; these say
    whether a gap is there from the start or opens (or closes) with iterations. Secondary, and many:
    read their p-values as exploratory."""
    def at(entries: Entries, k: int) -> Entries:  # a column's seeds that reached iteration k
        return [(r, k) for r, _ in entries if any(m["iteration"] == k for m in r.metrics)]

    out = []
    for key, g in _columns(runs).items():
        names = [c for c in g if c not in BASES]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                for k in range(1, max(it for _, it in g[a] + g[b]) + 1):
                    ea, eb = at(g[a], k), at(g[b], k)
                    t = _compare(ea, eb) if ea and eb else None
                    if t:
                        out.append({"dataset": key[0], "model": key[1], "iteration": k, "a": a, "b": b, **t})
    return out


def _cot_columns(g: dict[str, Entries]) -> list[str]:
    """A row's columns whose compared iterate was evaluated with rationales (not direct answers)."""
    def mode(run: Run, it: int) -> str:
        return next(m for m in run.metrics if m["iteration"] == it).get("eval_mode", "cot")

    return [c for c in COLUMNS if c in g and mode(*g[c][0]) == "cot"]


def _length_compare(pairs: list[tuple[Entries, Entries]]) -> dict | None:
    """Test-time output tokens of two columns paired by question (seed-averaged), pooled over the
    rows in `pairs`: the Wilcoxon signed-rank test, the median of b − a."""
    from scipy.stats import wilcoxon

    la, lb = (_pooled(pairs, s, lambda e: _seed_mean(e, Run.output_tokens)) for s in (0, 1))
    common = sorted(la.keys() & lb.keys())
    if len(common) < 10:
        return None
    x, y = [la[q] for q in common], [lb[q] for q in common]
    diffs = [v - u for u, v in zip(x, y)]
    p = float(wilcoxon(x, y).pvalue) if any(diffs) else 1.0
    return {"n": len(common), "mean_a": sum(x) / len(x), "mean_b": sum(y) / len(y),
            "median_diff": float(sorted(diffs)[len(diffs) // 2]), "p_value": p}


def length_tests(runs: list[Run]) -> list[dict]:
    """Is one column's test-time rationale shorter than another's? Per question, the tokens each
    final iterate wrote on the same test question (answer line included), compared with the
    Wilcoxon signed-rank test (scipy); columns evaluated with direct answers are left out."""
    out = []
    for key, g in _columns(runs).items():
        names = _cot_columns(g)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                t = _length_compare([(g[a], g[b])])
                if t:
                    out.append({"dataset": key[0], "model": key[1], "a": a, "b": b, **t})
    return out


CLAIM_ORDER = ("rejection", "star", "pps")  # the reference claim: each column beats the one before
ALPHA = 0.05


def _family(model: str) -> str:
    return ALIASES[model].family if model in ALIASES else model


def claims(runs: list[Run]) -> list[dict]:
    """The reference paper's two claims, checked on the rows (dataset x model) where rejection,
    STaR and PPS have all finished, pooled per model and per model family over those rows (each
    row's questions its own units; see `_compare_pooled`).

    "PPS > STaR > rejection" is *supported* when both steps (STaR − rejection, PPS − STaR) are
    positive with p < 0.05 — an intersection-union test, so the claim as a whole is tested at 0.05
    without a correction — *contradicted* when either step is significantly negative, *mixed* when
    one step is significant each way, otherwise *not supported*. "PPS writes shorter rationales"
    likewise, on test-time output tokens against STaR and against rejection (Wilcoxon). Pooling
    buys power that 300 questions per row lack; the per-row tests stay in paired_tests.json and
    length_tests.json. `baseline_tests`: each EM column against the untrained model, reasoning and
    answering directly, pooled over the rows that have that baseline."""
    rows = [(key, g) for key, g in _columns(runs).items() if all(c in g for c in CLAIM_ORDER)]
    scopes: dict[tuple[str, str], list] = {}
    for key, g in rows:
        scopes.setdefault(("family", _family(key[1])), []).append((key, g))
        scopes.setdefault(("model", key[1]), []).append((key, g))
    out = []
    for (scope, name), rs in sorted(scopes.items()):
        if scope == "model" and len(scopes[("family", _family(name))]) == len(rs):
            continue  # the only model of its family: the family's line says it
        accuracy, n = {}, {}
        for c in CLAIM_ORDER:
            per_q = [v for _, g in rs for v in _seed_mean(g[c], Run.predictions).values()]
            accuracy[c], n[c] = (sum(per_q) / len(per_q) if per_q else None), len(per_q)
        steps = {f"{b}_vs_{a}": _compare_pooled([(g[a], g[b]) for _, g in rs])
                 for a, b in (("rejection", "star"), ("star", "pps"), ("rejection", "pps"))}
        lengths = {f"pps_vs_{a}": _length_compare([(g[a], g["pps"]) for _, g in rs if {a, "pps"} <= set(_cot_columns(g))])
                   for a in ("star", "rejection")}
        baselines = {f"{c}_vs_{b}": _compare_pooled([(g[b], g[c]) for _, g in rs if b in g])
                     for b in BASES for c in CLAIM_ORDER}
        out.append({"scope": scope, "name": name, "rows": [list(k) for k, _ in rs],
                    "n": n["pps"], "accuracy": accuracy,
                    "accuracy_tests": steps, "length_tests": lengths, "baseline_tests": baselines,
                    "order_verdict": _verdict([steps["star_vs_rejection"], steps["pps_vs_star"]], sign=+1, key="diff"),
                    "length_verdict": _verdict(list(lengths.values()), sign=-1, key="median_diff")})
    return out


def _verdict(tests: list[dict | None], sign: int, key: str) -> str:
    """'supported' when every test goes the claimed way (sign of `key`) with p < ALPHA;
    'contradicted' when some go the other way with p < ALPHA and none the claimed way, 'mixed' when
    both happen; else 'not supported'."""
    if any(t is None for t in tests):
        return "untested"
    against = any(t["p_value"] < ALPHA and t[key] * sign < 0 for t in tests)
    along = [t["p_value"] < ALPHA and t[key] * sign > 0 for t in tests]
    if against:
        return "mixed" if any(along) else "contradicted"
    return "supported" if all(along) else "not supported"


def cost_rows(runs: list[Run]) -> list[dict]:
    """Per (dataset, model) and column: what the final iterate writes at test time, what its
    training rationales were, and what its E-steps cost in total."""
    rows = []
    for key, g in _columns(runs).items():
        for c in COLUMNS:
            if c in g:
                rows.append(_mean_over_seeds([_cost_row(key, c, run, it) for run, it in g[c]]))
    return rows


def _mean_over_seeds(rows: list[dict]) -> dict:
    """One column's cost rows, one per seed, as one: numbers averaged, the commonest answer pooled."""
    out = dict(rows[0], seeds=len(rows))
    if len(rows) == 1:
        return out
    for k in rows[0]:
        vals = [r[k] for r in rows if isinstance(r[k], (int, float)) and not isinstance(r[k], bool)]
        if vals and k not in ("iteration", "top_pred_share"):
            out[k] = sum(vals) / len(vals)
    tops = Counter(r["top_pred"] for r in rows if r["top_pred"] is not None).most_common(1)
    out["top_pred"] = tops[0][0] if tops else None
    shares = [r["top_pred_share"] for r in rows if tops and r["top_pred"] == out["top_pred"]]
    out["top_pred_share"] = sum(shares) / len(shares) if shares else None
    out["machines"] = sorted({m for r in rows for m in r.get("machines", [])})  # seeds may run on different machines
    return out


def _cost_row(key: tuple, c: str, run: Run, it: int) -> dict:
    ms = [m for m in run.metrics if m["iteration"] <= it]
    m = ms[-1]
    sampled = sum(x.get("sampled_tokens") or 0 for x in ms)
    accepted = sum(x.get("accepted") or 0 for x in ms)
    preds = run.prediction_rows(it)
    answered = [p for p in preds if p.get("pred")]
    top = Counter(p["pred"] for p in answered).most_common(1)
    trained = c in TRAINED
    cot = m.get("eval_mode", "cot") == "cot"
    return {"dataset": key[0], "model": key[1], "column": c, "iteration": it,
            "eval_mode": m.get("eval_mode", "cot"), "test_rationale_tokens": m.get("eval_mean_rationale_tokens"),
            "parse_rate": m.get("eval_parse_rate"), "train_rationale_tokens": m.get("mean_rationale_tokens"),
            "accepted_total": accepted if trained else None,
            "sampled_tokens_total": sampled if trained else None,
            "sampled_per_accepted": sampled / accepted if accepted and trained else None,
            "estep_seconds": sum(x.get("estep_seconds") or 0 for x in ms) or None,
            "train_seconds": sum(x.get("train_seconds") or 0 for x in ms) or None,
            # seconds mean little without the hardware: the machines its phases recorded, if any
            "machines": recorded_machines(ms),
            # accuracy where the reader found an answer, and the most frequent answer's share
            # of all questions: output format and letter habits, apart from accuracy
            "answered_accuracy": sum(bool(p["correct"]) for p in answered) / len(answered) if answered else None,
            # the same outputs read leniently (an unreadable one's last answer line decides): how much
            # of a gap is the reader's strictness about format rather than the answers
            "lenient_accuracy": sum(map(_lenient_correct, preds)) / len(preds) if preds and cot else None,
            "top_pred": top[0][0] if top else None,
            "top_pred_share": top[0][1] / len(preds) if top else None,
            "option_by_option": sum(goes_through_options(p.get("output") or "") for p in preds) / len(preds)
            if preds and cot else None}


def letter_baselines(runs: list[Run]) -> list[dict]:
    """Per (dataset, model) row: what always answering the most common gold letter of its test
    questions scores. Fine-tuning a small model can reach that by a letter habit alone, so an
    accuracy near it says little about reasoning."""
    out = []
    for key, g in _columns(runs).items():
        run, it = next(iter(g.values()))[0]
        golds = Counter(p["gold"] for p in run.prediction_rows(it) if p.get("gold"))
        if golds:
            letter, k = golds.most_common(1)[0]
            n = sum(golds.values())
            out.append({"dataset": key[0], "model": key[1], "letter": letter, "accuracy": k / n, "n": n})
    return out


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _say_if_empty(ax) -> bool:
    """A row whose runs have nothing for this plot yet (only its base finished, say) gets a panel
    that says so, rather than blank axes a reader may take for a drawing error."""
    if ax.lines or ax.patches or ax.collections:
        return False
    ax.text(0.5, 0.5, "nothing to plot yet\n(no trained iterate finished)", transform=ax.transAxes,
            ha="center", va="center", color="0.4", fontsize=9)
    return True


def plots(runs: list[Run]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: dict[str, bytes] = {}
    trained = [r for r in runs if r.sampler not in ("none",)]
    keys = sorted({r.key for r in runs})
    seeded = Counter((r.key, r.sampler) for r in runs)  # a column run with several seeds: one line each
    seed_rank = {r.path: sorted(x.seed for x in runs if (x.key, x.sampler) == (r.key, r.sampler)).index(r.seed) for r in runs}

    def style(r: Run) -> dict:
        return {"color": COLORS.get(r.sampler), "marker": MARKERS[seed_rank[r.path] % len(MARKERS)]}

    def run_label(r: Run) -> str:
        label = r.label + (f" s{r.seed}" if seeded[r.key, r.sampler] > 1 else "")
        return label if len(keys) > 1 else f"{r.name}: {label}"

    def facets():
        """One panel per (dataset, model) row of the table, so a study's runs stay readable."""
        n = len(keys)
        cols = min(n, 3)
        rows_ = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows_, cols, figsize=(6 * cols, 4 * rows_), squeeze=False)
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        panel = {k: axes.flat[i] for i, k in enumerate(keys)}
        for k, ax in panel.items():
            ax.set_title(f"{k[1]} · {k[0]}", fontsize=10)
        return fig, panel

    def line_plot(name, ykey, ylabel, xkey="iteration"):
        fig, panel = facets()
        if ykey == "eval_accuracy":  # the untrained model's zero-shot CoT: what training must beat
            for r in runs:
                if r.sampler == "none" and r.metrics:
                    panel[r.key].axhline(r.final["eval_accuracy"], ls="--", color=COLORS["none"], lw=1, label=run_label(r))
        for r in trained:
            ax = panel[r.key]
            pts = [(m.get(xkey), m.get(ykey)) for m in r.metrics if m.get(ykey) is not None and m.get(xkey) is not None]
            if pts:
                xs, ys = zip(*pts)
                label = run_label(r)
                if ykey == "eval_accuracy":  # with the 95% interval
                    ms = [m for m in r.metrics if m.get(xkey) is not None]
                    err = [[m["eval_accuracy"] - m["eval_ci_low"] for m in ms], [m["eval_ci_high"] - m["eval_accuracy"] for m in ms]]
                    ax.errorbar(xs, ys, yerr=err, capsize=3, label=label, **style(r))
                else:
                    ax.plot(xs, ys, label=label, **style(r))
        for ax in panel.values():
            if xkey == "iteration":
                from matplotlib.ticker import MaxNLocator

                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                lo, hi = ax.get_xlim()
                if hi - lo < 1:  # one iteration so far: whole-number ticks around it, not 0.99-1.01
                    mid = round((lo + hi) / 2)
                    ax.set_xlim(mid - 1, mid + 1)
            ax.set_xlabel(xkey.replace("_", " "))
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
            _say_if_empty(ax)
        fig.tight_layout()
        figs[name] = _png(fig)
        plt.close(fig)

    line_plot("accuracy_vs_iteration.png", "eval_accuracy", "test accuracy")
    line_plot("accept_rate_vs_iteration.png", "accept_rate", "questions with an accepted sample")
    for r in trained:  # cumulative E-step cost
        total = 0
        for m in r.metrics:
            total += m.get("sampled_tokens") or 0
            m["cumulative_sampled_tokens"] = total
    line_plot("accuracy_vs_sampled_tokens.png", "eval_accuracy", "test accuracy", xkey="cumulative_sampled_tokens")
    def hists(name: str, series: list[tuple[tuple, str, list[int], str]], xlabel: str, ylabel: str):
        """Histograms on bins shared within a panel, so the series can be compared bar by bar."""
        fig, panel = facets()
        top = {}
        for key, _, xs, _ in series:
            top[key] = max(top.get(key, 1), max(xs))
        for key, label, xs, column in series:
            panel[key].hist(xs, bins=[top[key] * i / 30 for i in range(31)], alpha=0.45, label=label,
                            color=COLORS.get(column))
        for ax in panel.values():
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
            _say_if_empty(ax)
        fig.tight_layout()
        figs[name] = _png(fig)
        plt.close(fig)

    series = []
    for r in trained:
        lengths = [s["tokens"] for m in r.metrics if m["iteration"] > 0 for s in r.samples(m["iteration"]) if s["accepted"]]
        if lengths:
            series.append((r.key, f"{run_label(r)} (n={len(lengths)})", lengths, r.sampler))
    hists("rationale_length.png", series, "accepted rationale length (tokens)", "samples")
    # test-time rationale length of each column's final iterate (what "shorter rationales" means)
    series = []
    for key, g in _columns(runs).items():
        for c in _cot_columns(g):
            (run, it), seeds = g[c][0], len(g[c])
            lengths = [n for r, i in g[c] for n in r.output_tokens(i).values()]  # pooled over seeds
            if lengths:
                label = (TITLES[c] if c != "rejection" else run.label) + (f", {seeds} seeds" if seeds > 1 else "")
                series.append((key, f"{label} it {it} (mean {sum(lengths) / len(lengths):.0f})", lengths, c))
    hists("test_rationale_length.png", series, "test-time output length (tokens)", "questions")
    return figs


def _f(v, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _diff(t: dict) -> str:
    return f"{t['diff']:+.3f} [{t['diff_ci_low']:+.3f}, {t['diff_ci_high']:+.3f}]"


def _p(p: float) -> str:
    """A p-value; scipy returns 0.0 below the smallest double, which is not a probability of zero."""
    return "< 1e-300" if p == 0 else f"{p:.3g}"


def _top(c: dict) -> str:
    return "–" if c["top_pred"] is None else f"({c['top_pred']}) {c['top_pred_share']:.2f}"


def _seeded(tests: list[dict]) -> str:
    """The caption's note when some comparison involves a column run with several seeds."""
    if all(t.get("test", "mcnemar") == "mcnemar" for t in tests):
        return ""
    return ("; a column with several seeds: Wilcoxon signed-rank on seed-averaged correctness, "
            "only a / b right = questions where a / b is ahead")


def _scope(claim: dict) -> str:
    if claim["scope"] == "model":
        return claim["name"]
    return f"{claim['name']} family ({', '.join(sorted({m for _, m in claim['rows']}))})"


def _cell(v: tuple) -> str:
    acc, lo, hi, n, it, seeds, sd = v
    return _fmt(acc, lo, hi) + (f" (n={n}, it {it})" if seeds == 1 else f" (n={n}, it {it}, {seeds} seeds, sd {sd:.3f})")


def markdown(rows: list[dict], tests: list[dict], runs: list[Run], costs: list[dict] | None = None,
             ltests: list[dict] | None = None, letters: list[dict] | None = None, itests: list[dict] | None = None,
             mtests: list[dict] | None = None, claim_rows: list[dict] | None = None) -> str:
    cols = [c for c in COLUMNS if any(c in r for r in rows)]
    lines = ["| dataset | model | " + " | ".join(TITLES[c] for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for r in rows:
        cells = [_cell(r[c]) if c in r else "–" for c in cols]
        lines.append(f"| {r['dataset']} | {r['model']} | " + " | ".join(cells) + " |")
    if running := unfinished(runs):
        lines += ["", "Still running, so not in the table or the tests (accuracy of each iterate evaluated so far): " + "; ".join(
            f"{u['run']}: " + ", ".join(f"it {k} {a:.3f}" for k, a in u["evaluated"].items()) + f" (of {u['planned']})"
            for u in running) + "."]
    if letters:
        lines += ["", "Always answering the most common gold letter: " + "; ".join(
            f"{b['dataset']} · {b['model']}: ({b['letter']}) {b['accuracy']:.3f} (n={b['n']})" for b in letters) + "."]
    if claim_rows:
        lines += ["", "The reference claims, pooled over the rows where rejection, STaR and PPS have all finished "
                  f"(per model family, and per model where a family has several; each step of a claim at p < {ALPHA}, "
                  "tests as below, `claims.json`):", "",
                  "| scope | rows | questions | rejection | STaR | PPS | STaR − rejection | PPS − STaR | PPS > STaR > rejection "
                  "| PPS − STaR tokens (median) | PPS − rejection tokens (median) | PPS shorter |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in claim_rows:
            acc, at, lt = c["accuracy"], c["accuracy_tests"], c["length_tests"]
            step = lambda t: "–" if t is None else f"{t['diff']:+.3f} (p {_p(t['p_value'])})"
            tok = lambda t: "–" if t is None else f"{t['median_diff']:+.0f} (p {_p(t['p_value'])})"
            lines.append(f"| {_scope(c)} | {len(c['rows'])} | {c['n']} | "
                         + " | ".join(_f(acc[x], ".3f") for x in CLAIM_ORDER)
                         + f" | {step(at['star_vs_rejection'])} | {step(at['pps_vs_star'])} | {c['order_verdict']} | "
                         f"{tok(lt['pps_vs_star'])} | {tok(lt['pps_vs_rejection'])} | {c['length_verdict']} |")
        lines += ["", "The same rows, each EM column against the untrained model reasoning (base CoT) and answering "
                  "directly (base direct answer), pooled the same way:", "",
                  "| scope | " + " | ".join(f"{TITLES[c]} − {TITLES[b]}" for b in BASES for c in CLAIM_ORDER) + " |",
                  "|---|" + "---|" * 6]
        for c in claim_rows:
            step = lambda t: "–" if t is None else f"{t['diff']:+.3f} (p {_p(t['p_value'])}, n {t['n']})"
            lines.append(f"| {_scope(c)} | " + " | ".join(step(c["baseline_tests"][f"{x}_vs_{b}"])
                                                          for b in BASES for x in CLAIM_ORDER) + " |")
    lines += ["", "## Paired comparisons", "", f"McNemar's exact test; diff = b − a with a 95% interval{_seeded(tests)}:", "",
              "| dataset | model | a | b | only a right | only b right | diff [95% CI] | p | read leniently: diff | p |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for t in tests:
        lenient = (f"{t['lenient_diff']:+.3f} | {_p(t['lenient_p_value'])}" if "lenient_diff" in t else "– | –")
        lines.append(f"| {t['dataset']} | {t['model']} | {t['a']} | {t['b']} | {t['only_a']} | {t['only_b']} | "
                     f"{_diff(t)} | {_p(t['p_value'])} | {lenient} |")
    if costs:
        lines += ["", "## Rationale length and E-step cost", "", "Each column's compared iterate; sampled tokens summed over its E-steps:", "",
                  "| dataset | model | column | it | test output tokens (mean) | parse rate | accepted rationale tokens | "
                  "accepted (all E-steps) | sampled tokens | sampled / accepted | E-step s | M-step s | "
                  "accuracy when answered | accuracy, last answer line decides | most frequent answer (share) | option by option |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in costs:
            lines.append(f"| {c['dataset']} | {c['model']} | {TITLES[c['column']]} | {c['iteration']} | "
                         f"{_f(c['test_rationale_tokens'], '.1f')}{' (direct)' if c['eval_mode'] == 'direct' else ''} | "
                         f"{_f(c['parse_rate'], '.2f')} | {_f(c['train_rationale_tokens'], '.1f')} | {_f(c['accepted_total'], '.0f')} | "
                         f"{_f(c['sampled_tokens_total'], '.0f')} | {_f(c['sampled_per_accepted'], '.1f')} | "
                         f"{_f(c['estep_seconds'], '.0f')} | {_f(c['train_seconds'], '.0f')} | "
                         f"{_f(c['answered_accuracy'], '.3f')} | {_f(c['lenient_accuracy'], '.3f')} | {_top(c)} | {_f(c['option_by_option'], '.2f')} |")
        machines = sorted({m for c in costs for m in c.get("machines", [])})
        if machines:
            blind = sum(not c.get("machines") for c in costs)
            lines += ["", "Seconds are wall time on the machine that ran the phase: "
                      + "; ".join(f"{m} ({sum(m in c.get('machines', []) for c in costs)} columns)" for m in machines)
                      + (f"; {blind} columns record none (run before emreason recorded it)" if blind else "") + "."]
    if itests:
        lines += ["", "## Each iteration against the one before", "", "Same run and questions (McNemar's exact test):", "",
                  "| run | from | to | only before right | only after right | diff [95% CI] | p |", "|---|---|---|---|---|---|---|"]
        for t in itests:
            lines.append(f"| {t['run']} | {t['from']} | {t['to']} | {t['only_a']} | {t['only_b']} | "
                         f"{_diff(t)} | {_p(t['p_value'])} |")
    if mtests:
        lines += ["", "## Trained columns at the same EM iteration", "", f"McNemar's exact test{_seeded(mtests)}; exploratory:", "",
                  "| dataset | model | iteration | a | b | only a right | only b right | diff [95% CI] | p |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for t in mtests:
            lines.append(f"| {t['dataset']} | {t['model']} | {t['iteration']} | {t['a']} | {t['b']} | {t['only_a']} | "
                         f"{t['only_b']} | {_diff(t)} | {_p(t['p_value'])} |")
    if ltests:
        lines += ["", "## Test-time output length", "", "Paired by question, Wilcoxon signed-rank; median of b − a in tokens:", "",
                  "| dataset | model | a | b | n | mean a | mean b | median b − a | p |", "|---|---|---|---|---|---|---|---|---|"]
        for t in ltests:
            lines.append(f"| {t['dataset']} | {t['model']} | {t['a']} | {t['b']} | {t['n']} | {t['mean_a']:.1f} | "
                         f"{t['mean_b']:.1f} | {t['median_diff']:+.0f} | {_p(t['p_value'])} |")
    lines += ["", "## Per iteration", "", "Every run's iterations:", "", "| run | iter | accept rate | tokens / accepted | rationale tokens | train loss | accuracy [95% CI] | parse rate |",
              "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        for m in run.metrics:
            tpa, mrt, loss = m.get("tokens_per_accepted"), m.get("mean_rationale_tokens"), m.get("train_loss")
            acc_rate = m.get("accept_rate")
            lines.append(f"| {run.name} | {m['iteration']} | {'–' if acc_rate is None else f'{acc_rate:.3f}'} | "
                         f"{'–' if tpa is None else f'{tpa:.1f}'} | {'–' if mrt is None else f'{mrt:.1f}'} | "
                         f"{'–' if loss is None else f'{loss:.3f}'} | {_fmt(m['eval_accuracy'], m['eval_ci_low'], m['eval_ci_high'])} | "
                         f"{m['eval_parse_rate']:.2f} |")
    return "\n".join(lines) + "\n"


def _questions(run: Run, split: str = "train") -> dict[str, dict]:
    """Question texts for the browsers (from the local data, when it is there)."""
    from . import data

    d = run.config["data"]
    try:
        if split == "train":
            loaded = data.load(d["dataset"], d["train_split"], d.get("data_dir"), d.get("train_size"), d["seed"])
        else:
            loaded = data.load(d["dataset"], d["eval_split"], d.get("data_dir"), d.get("eval_size"), d.get("eval_subset_seed"))
        return {e.id: {"q": e.question, "choices": dict(e.choices)} for e in loaded}
    except (EmreasonError, KeyError):
        return {}


def _test_answers(runs: list[Run], max_questions: int) -> list[dict]:
    """For the browser: each column's test-time output on the same questions, side by side."""
    out = []
    for key, g in _columns(runs).items():
        cols = [(c, run, it, f"{TITLES[c]} (it {it}" + (f", s{run.seed})" if len(g[c]) > 1 else ")"))
                for c in COLUMNS if c in g for run, it in g[c]]
        preds = [{r["id"]: r for r in run.prediction_rows(it)} for _, run, it, _ in cols]
        qs = _questions(cols[0][1], "eval") if cols else {}
        ids = [q for q in preds[0] if all(q in p for p in preds)][:max_questions] if cols else []
        for qid in ids:
            q = qs.get(qid, {})
            out.append({"run": f"test answers · {key[1]} · {key[0]}", "iter": "final", "id": qid, "q": q.get("q", ""),
                        "choices": [f"{l}) {t}" for l, t in q.get("choices", {}).items()],
                        "samples": [{"stage": stage, "hinted": False, "accepted": bool(p[qid]["correct"]),
                                     "verdict": "correct" if p[qid]["correct"] else ("wrong" if p[qid].get("pred") else "no answer"),
                                     "pred": p[qid].get("pred"), "gold": p[qid].get("gold"),
                                     "tokens": p[qid].get("tokens"), "text": p[qid].get("output", "")}
                                    for (_, _, _, stage), p in zip(cols, preds)]})
    return out


def html_report(md: str, figs: dict[str, bytes], runs: list[Run], max_questions: int = 60) -> str:
    browser = []
    for run in runs:
        if run.sampler in ("none", "direct"):
            continue
        qs = _questions(run)
        for m in run.metrics:
            if m["iteration"] == 0:
                continue
            by_q: dict[str, list] = {}
            for s in run.samples(m["iteration"]):
                by_q.setdefault(s["question_id"], []).append(s)
            for qid in list(by_q)[:max_questions]:
                q = qs.get(qid, {})
                browser.append({"run": run.name, "iter": m["iteration"], "id": qid, "q": q.get("q", ""),
                                "choices": [f"{chr(65 + i)}) {q.get('choices', {}).get(l, l)}" for i, l in enumerate(by_q[qid][0]["choices"])],
                                "samples": [{**{k: s[k] for k in ("stage", "hinted", "accepted", "pred", "gold", "tokens", "text")},
                                             "verdict": "accepted" if s["accepted"] else f"rejected: {s['reject']}"}
                                            for s in by_q[qid]]})
    browser = _test_answers(runs, max_questions) + browser
    imgs = "".join(f'<figure><img alt="{n}" src="data:image/png;base64,{base64.b64encode(b).decode()}"><figcaption>{n}</figcaption></figure>'
                   for n, b in figs.items())
    # The browser's samples grow with the grid (4 MB of JSON at half the paper grid); gzip and base64 keep
    # the page one self-contained file at about a quarter of that, and the browser unpacks it (DecompressionStream).
    data_z = base64.b64encode(gzip.compress(json.dumps(browser).encode(), 9, mtime=0)).decode()
    # The headline (main table, claims) first, then the plots; the detailed tables, hundreds of rows on
    # a full grid, folded under their headings.
    head, *sections = md.split("\n## ")
    titled = [sec.partition("\n")[::2] for sec in sections]  # (heading, body)
    md_json = json.dumps([head] + [body for _, body in titled]).replace("</", "<\\/")
    folded = "".join(f'<details><summary>{html.escape(title)}</summary><div class="md" id="md{i}"></div></details>'
                     for i, (title, _) in enumerate(titled, 1))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>emreason report</title>
<style>body{{font:14px system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px}}figure{{display:inline-block;margin:.5em}}img{{max-width:560px}}
.s{{border-left:4px solid #bbb;margin:.4em 0;padding:.3em .6em;white-space:pre-wrap;font:12px monospace}}.ok{{border-color:#2a2}}.no{{border-color:#c33}}
.h{{background:#fff8e0}}summary{{font-weight:600;cursor:pointer;margin:.4em 0}}select,input{{margin-right:1em}}</style></head><body>
<h1>emreason report</h1><div class="md" id="md0"></div><h2>Plots</h2>{imgs}
<h2>Details</h2>{folded}
<h2>Sample browser</h2><p>"test answers": every column's final model on the same first {max_questions} test questions, side by
side (green correct, red not). The runs: every E-step attempt for the first {max_questions} questions of each iteration, green
accepted, red rejected (reason shown), yellow background hinted.</p>
<label>run <select id="run"></select></label><label>filter <select id="f"><option value="all">all</option><option value="acc">accepted / correct</option>
<option value="rej">rejected / wrong</option><option value="hint">hinted</option></select></label><label>search <input id="q"></label>
<div id="out"></div>
<script>
const MD={md_json};const Z="{data_z}";
function mdTable(t){{return t.split("\\n").map(l=>l.startsWith("|")?l:(l.trim()?"<p>"+l+"</p>":"")).join("\\n")
 .replace(/((?:^\\|.*\\|$\\n?)+)/gm,b=>{{const r=b.trim().split("\\n").filter(x=>!/^\\|[-|]+\\|$/.test(x));
 return "<table>"+r.map((x,i)=>"<tr>"+x.slice(1,-1).split("|").map(c=>i?"<td>"+c+"</td>":"<th>"+c+"</th>").join("")+"</tr>").join("")+"</table>"}});}}
MD.forEach((m,i)=>document.getElementById("md"+i).innerHTML=mdTable(m));
const sel=document.getElementById("run");
function esc(s){{return String(s).replace(/[&<>]/g,c=>({{"&":"&amp;","<":"&lt;",">":"&gt;"}}[c]))}}
function show(){{const f=document.getElementById("f").value,q=document.getElementById("q").value.toLowerCase();let h="";
 for(const d of D){{if(d.run+" · iter "+d.iter!==sel.value)continue;
  const ss=d.samples.filter(s=>f==="all"||(f==="acc"&&s.accepted)||(f==="rej"&&!s.accepted)||(f==="hint"&&s.hinted));
  if(!ss.length||(q&&!(d.q+JSON.stringify(ss)).toLowerCase().includes(q)))continue;
  h+="<h3>"+esc(d.id)+"</h3><p>"+esc(d.q)+"<br>"+d.choices.map(esc).join("<br>")+"</p>";
  for(const s of ss)h+="<div class='s "+(s.accepted?"ok":"no")+(s.hinted?" h":"")+"'><b>"+esc(s.stage)+" · pred "+esc(s.pred??"none")+" · gold "+esc(s.gold)+
   " · "+s.tokens+" tokens · "+esc(s.verdict)+"</b>\\n"+esc(s.text)+"</div>";}}
 document.getElementById("out").innerHTML=h||"<p>no samples</p>";}}
let D=[];
new Response(new Blob([Uint8Array.from(atob(Z),c=>c.charCodeAt(0))]).stream().pipeThrough(new DecompressionStream("gzip"))).json().then(d=>{{
 D=d;[...new Set(D.map(d=>d.run+" · iter "+d.iter))].forEach(r=>{{const o=document.createElement("option");o.textContent=r;sel.appendChild(o)}});show();}});
["run","f","q"].forEach(i=>document.getElementById(i).addEventListener("input",show));
</script></body></html>"""


def page_samples(page: str) -> list[dict]:
    """The sample browser's records as a report.html page holds them (gzip + base64), for scripts and tests."""
    z = re.search(r'const Z="([A-Za-z0-9+/=]*)"', page)
    if not z:
        raise EmreasonError("no sample browser data in this page: is it an emreason report.html?")
    return json.loads(gzip.decompress(base64.b64decode(z.group(1))))


def report(paths: list[str], out: Path) -> dict:
    runs = find_runs(paths)
    rows = table(runs)
    tests = paired_tests(runs)
    costs = cost_rows(runs)
    ltests = length_tests(runs)
    letters = letter_baselines(runs)
    itests = iteration_tests(runs)
    mtests = matched_tests(runs)
    figs = plots(runs)
    claim_rows = claims(runs)
    md = markdown(rows, tests, runs, costs, ltests, letters, itests, mtests, claim_rows)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "table.md", md)
    buf = io.StringIO()
    w = csv.writer(buf)
    fields = ("accuracy", "ci_low", "ci_high", "n", "iteration", "seeds", "seed_sd")
    w.writerow(["dataset", "model"] + [f"{c}_{x}" for c in COLUMNS for x in fields])
    for r in rows:
        w.writerow([r["dataset"], r["model"]] + [("" if v is None else v) for c in COLUMNS for v in (r[c] if c in r else ("",) * len(fields))])
    atomic_write_text(out / "table.csv", buf.getvalue())
    atomic_write_text(out / "paired_tests.json", json.dumps(tests, indent=2) + "\n")
    atomic_write_text(out / "length_tests.json", json.dumps(ltests, indent=2) + "\n")
    atomic_write_text(out / "iteration_tests.json", json.dumps(itests, indent=2) + "\n")
    atomic_write_text(out / "matched_tests.json", json.dumps(mtests, indent=2) + "\n")
    atomic_write_text(out / "costs.json", json.dumps(costs, indent=2) + "\n")
    atomic_write_text(out / "claims.json", json.dumps(claim_rows, indent=2) + "\n")
    for name, png in figs.items():
        (out / name).write_bytes(png)
    atomic_write_text(out / "report.html", html_report(md, figs, runs))
    return {"runs": len(runs), "rows": rows, "tests": tests, "markdown": md}


def report_from_cli(args) -> int:
    result = report(args.runs, Path(args.out))
    print(result["markdown"])
    print(f"wrote {args.out}/table.md, table.csv, paired_tests.json, *.png, report.html ({result['runs']} runs)")
    return 0
