"""Accuracy you can trust: the answer each question got, a 95% interval, and paired tests.

Every evaluation keeps its per-question predictions (the evidence), reports the parse rate (an
unparseable answer counts as wrong), and the distribution of predicted letters, because small
models have a strong letter bias that accuracy alone hides.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from scipy.stats import binomtest

from . import prompts as P
from .backends import SamplingParams
from .config import PromptConfig
from .data import Example


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
    start = time.perf_counter()
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
    return EvalResult(timed_summary(records, time.perf_counter() - start, mode), records)


def timed_summary(records: list[dict], seconds: float, mode: str) -> dict:
    """summarize() plus the time it took and the output tokens per second (generation modes)."""
    metrics = summarize(records)
    metrics["seconds"] = round(seconds, 2)
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
