"""Accuracy you can trust: the answer each question got, a 95% interval, and paired tests.

Every evaluation keeps its per-question predictions (the evidence), reports the parse rate (an
unparseable answer counts as wrong), and the distribution of predicted letters, because small
models have a strong letter bias that accuracy alone hides.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from scipy.stats import binomtest

from . import prompts as P
from .backends import SamplingParams
from .clock import PhaseClock
from .config import PromptConfig
from .data import Example
from .errors import EmreasonError
from .store import read_json, read_jsonl, read_rows, rewrite_rows, write_json, write_jsonl


def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (well-behaved near 0 and 1, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass
class EvalResult:
    metrics: dict
    records: list[dict] = field(default_factory=list)


def evaluate(backend, examples: list[Example], mode: str = "cot", prompts: PromptConfig | None = None,
             max_new_tokens: int = 256, temperature: float = 0.0, seed: int = 0, progress=None) -> EvalResult:
    """Evaluate `examples` in `mode` ('cot', 'direct' or 'loglik')."""
    prompts = prompts or PromptConfig()
    with PhaseClock() as clock:
        records = _records(backend, examples, mode, prompts, max_new_tokens, temperature, seed, progress)
        seconds, cpu_seconds, paused = clock.lap()
    metrics = timed_summary(records, seconds, mode, paused)
    metrics["cpu_seconds"] = round(cpu_seconds, 2)
    return EvalResult(metrics, records)


def _records(backend, examples, mode, prompts, max_new_tokens, temperature, seed, progress) -> list[dict]:
    """One record per question: the prompt, the output, the answer read from it, and whether it is right."""
    if mode == "loglik":
        records = _loglik_records(backend, examples, progress)
    else:
        texts = [P.prompt_text(backend, ex, mode, prompts) for ex in examples]
        params = SamplingParams(n=1, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
        gens = backend.generate(texts, params, progress=progress)
        records = []
        for ex, prompt, (g,) in zip(examples, texts, gens):
            pred = P.extract_answer(g.text, ex)
            records.append({"id": ex.id, "prompt": prompt, "output": g.text, "pred": pred,
                            "gold": ex.answer_letter, "correct": pred == ex.answer_letter,
                            "tokens": g.tokens, "truncated": g.truncated})
    return records


def timed_summary(records: list[dict], seconds: float, mode: str, paused: float) -> dict:
    """summarize() plus the time it took (stops left out, `clock.PhaseClock`; the seconds paused
    beside) and the output tokens per second (generation modes)."""
    metrics = summarize(records)
    metrics["seconds"] = round(seconds, 2)
    metrics["paused_seconds"] = round(paused, 2)
    if mode != "loglik" and seconds > 0:
        metrics["tokens_per_second"] = round(sum(r["tokens"] for r in records) / seconds, 2)
    metrics["mode"] = mode
    return metrics


def _loglik_records(backend, examples: list[Example], progress) -> list[dict]:
    pairs = [(P.loglik_context(ex), " " + t) for ex in examples for t in ex.texts]
    scores = backend.loglik(pairs)
    records, k = [], 0
    for ex in examples:
        s = scores[k:k + len(ex.choices)]
        k += len(ex.choices)
        norm = [v / max(1, len(t)) for v, t in zip(s, ex.texts)]  # lm-eval's acc_norm: per character
        pred = ex.letters[max(range(len(s)), key=s.__getitem__)]
        pred_norm = ex.letters[max(range(len(norm)), key=norm.__getitem__)]
        records.append({"id": ex.id, "prompt": P.loglik_context(ex), "output": "", "scores": s,
                        "pred": pred, "pred_norm": pred_norm, "gold": ex.answer_letter,
                        "correct": pred == ex.answer_letter, "correct_norm": pred_norm == ex.answer_letter,
                        "tokens": 0, "truncated": False})
        if progress is not None:
            progress.update(1)
    return records


def summarize(records: list[dict]) -> dict:
    n = len(records)
    correct = sum(r["correct"] for r in records)
    lo, hi = wilson_interval(correct, n)
    parsed = [r for r in records if r["pred"] is not None]
    out = {
        "accuracy": correct / n if n else 0.0,
        "ci_low": lo,
        "ci_high": hi,
        "n": n,
        "correct": correct,
        "parse_rate": len(parsed) / n if n else 0.0,
        "mean_rationale_tokens": sum(r["tokens"] for r in records) / n if n else 0.0,
        "truncated_rate": sum(r["truncated"] for r in records) / n if n else 0.0,
        "pred_distribution": dict(sorted(Counter(r["pred"] or "none" for r in records).items())),
        "gold_distribution": dict(sorted(Counter(r["gold"] for r in records).items())),
    }
    if records and "correct_norm" in records[0]:
        k = sum(r["correct_norm"] for r in records)
        out["accuracy_norm"] = k / n
        out["ci_low_norm"], out["ci_high_norm"] = wilson_interval(k, n)
    return out


def reread(run_dir: str | Path, write: bool = True) -> list[dict]:
    """Read a run's stored evaluation outputs again with the current answer reader.

    An answer is read from the output, and the output is the evidence: when the reader improves,
    finished evaluations are read again instead of generated again, so every cell of a comparison is
    read by the same rules. Returns one row per prediction that changes; with `write`, rewrites the
    predictions (plain or .gz, as found), the evaluation's metrics.json and the run's metrics.jsonl.
    E-step samples are not re-read: they already decided what was trained on."""
    from . import data

    run_dir = Path(run_dir)
    cfg = read_json(run_dir / "run.json")["config"]["data"]
    questions: dict[str, Example] | None = None
    changes: list[dict] = []
    for metrics_path in sorted(run_dir.glob("iter_*/eval/metrics.json"), key=lambda p: int(p.parts[-3][5:])):
        old = read_json(metrics_path)
        records = read_rows(metrics_path.parent / "predictions.jsonl")
        if old.get("mode") == "loglik" or not records:
            continue
        if questions is None:
            questions = {e.id: e for e in data.load(cfg["dataset"], cfg["eval_split"], cfg.get("data_dir"))}
        k = int(metrics_path.parts[-3][5:])
        changed = []
        for r in records:
            if r["id"] not in questions:
                raise EmreasonError(f"{metrics_path.parent}: question {r['id']!r} is not in {cfg['dataset']} "
                                    f"{cfg['eval_split']}: is data.data_dir the one this run was evaluated on?")
            pred = P.extract_answer(r["output"], questions[r["id"]])
            if pred != r["pred"]:
                changed.append({"run": run_dir.name, "iteration": k, "id": r["id"], "old": r["pred"],
                                "new": pred, "gold": r["gold"]})
                r["pred"], r["correct"] = pred, pred == r["gold"]
        if changed and write:
            new = {**old, **summarize(records)}
            rewrite_rows(metrics_path.parent / "predictions.jsonl", records)
            write_json(metrics_path, new)
            rows = read_jsonl(run_dir / "metrics.jsonl")
            for row in rows:
                if row.get("iteration") == k:
                    row.update({f"eval_{key}": v for key, v in new.items()})
            if rows:
                write_jsonl(run_dir / "metrics.jsonl", rows)
        changes += changed
    return changes


def reread_samples(run_dir: str | Path) -> tuple[int, list[dict]]:
    """E-step samples whose answer the current reader reads differently from the one recorded, and
    how many samples were read. Nothing is rewritten (the samples already chose the training rows):
    a change that flips a sample between wrong and correct (`flips`) means a training set would
    differ under the current reader."""
    from . import data
    from .samplers import present

    run_dir = Path(run_dir)
    cfg = read_json(run_dir / "run.json")["config"]["data"]
    questions = None
    seen, changes = 0, []
    for it in sorted(run_dir.glob("iter_*"), key=lambda p: int(p.name[5:])):
        rows = read_rows(it / "samples.jsonl")
        if rows and questions is None:
            questions = {e.id: e for e in data.load(cfg["dataset"], cfg["train_split"], cfg.get("data_dir"))}
        k = int(it.name[5:])
        for r in rows:
            if "question_id" not in r:  # a chunk marker
                continue
            if r["question_id"] not in questions:
                raise EmreasonError(f"{it}: question {r['question_id']!r} is not in {cfg['dataset']} "
                                    f"{cfg['train_split']}: is data.data_dir the one this run sampled from?")
            ex = present(questions[r["question_id"]], cfg.get("seed") or 0, k, bool(cfg.get("shuffle_choices")))
            seen += 1
            pred = P.extract_answer(r["text"], ex)
            if pred != r["pred"]:
                changes.append({"run": run_dir.name, "iteration": k, "id": r["question_id"], "old": r["pred"],
                                "new": pred, "gold": r["gold"], "flips": (pred == r["gold"]) != (r["pred"] == r["gold"])})
    return seen, changes


def reread_from_cli(args) -> int:
    from .report import find_runs

    runs = find_runs(args.runs)
    total = 0
    for run in runs:
        before = {r["iteration"]: r.get("eval_accuracy") for r in run.metrics}
        changes = reread(run.path, write=not args.dry_run)
        total += len(changes)
        for c in changes:
            print(f"{c['run']} iter {c['iteration']} {c['id']}: {c['old']} -> {c['new']} (gold {c['gold']})")
        if changes and not args.dry_run:
            after = {r["iteration"]: r.get("eval_accuracy") for r in read_jsonl(run.path / "metrics.jsonl")}
            for k in sorted({c["iteration"] for c in changes}):
                if before.get(k) is not None and after.get(k) is not None:
                    print(f"{run.name} iter {k}: accuracy {before[k]:.3f} -> {after[k]:.3f}")
    verb = "would change" if args.dry_run else "changed"
    print(f"{total} prediction(s) {verb} in {len(runs)} run(s)")
    read = [reread_samples(run.path) for run in runs]
    seen, changes = sum(n for n, _ in read), [c for _, cs in read for c in cs]
    print(f"E-step samples (never rewritten): {len(changes)} of {seen} read differently, "
          f"{sum(c['flips'] for c in changes)} of them between wrong and correct")
    return 0


def mcnemar(a: list[bool], b: list[bool]) -> dict:
    """McNemar's exact test for two systems scored on the same questions, with the paired
    accuracy difference (b - a) and its Wald interval."""
    if len(a) != len(b):
        raise ValueError("paired test needs the same questions in both runs")
    n = len(a)
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    disc = only_a + only_b
    p = binomtest(only_b, disc, 0.5).pvalue if disc else 1.0
    diff = (only_b - only_a) / n if n else 0.0
    var = ((only_a + only_b) / n - diff ** 2) / n if n else 0.0
    half = 1.959964 * max(var, 0.0) ** 0.5
    return {"n": n, "only_a": only_a, "only_b": only_b, "p_value": float(p), "diff": diff,
            "diff_ci_low": diff - half, "diff_ci_high": diff + half}
