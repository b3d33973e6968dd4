"""E-step: proposal distributions that draw rationales and keep the ones that reach y*.

A sampler is a list of stages (prompt mode, budget), from `SamplerConfig.stages()`:
  rejection  [("cot", k)]                     up to k plain samples, accept a correct one
  star       [("cot", 1), ("hinted", 1)]      plain first; rationalize with the hint when wrong
  pps        [("hinted", 1)]                  hinted only (STaR's rationalization stage)
A question moves on to the next round or stage only while it has fewer than `keep` accepted samples,
so every attempt that is drawn was needed, and budgets are exact. Every attempt becomes a record
(the evidence); the loop writes them to the sample log.

Training examples are always built from the plain chain-of-thought prompt: the hint used to sample
a rationale is never in the prompt the model is trained on, and the target ends with the correct
answer in a fixed form.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from dataclasses import replace

from . import prompts as P
from .backends import SamplingParams
from .config import FilterConfig, GenerationConfig, PromptConfig, SamplerConfig
from .data import Example

# Phrases by which a hinted rationale gives away that it was told the answer.
HINT_LEAK_RE = re.compile(
    r"(?i)\b(?:correct answer is|the correct (?:choice|option) is|(?:the|a|this) hint|as (?:given|stated|provided|told|mentioned|indicated)"
    r"|(?:we|i) (?:were|was|am|are|have been) (?:told|given)|(?:given|provided|stated) (?:answer|solution)"
    r"|you (?:said|told|mentioned|gave)|(?:answer|choice|option) (?:given|provided) (?:is|was)|told (?:me|us) (?:that|the)"
    r"|the user\b|you(?:'ve| have| were| are)? (?:been )?(?:given|told)|(?:given|provided|stated) by (?:you|the (?:prompt|question))"
    r"|already (?:mentioned|given|stated|provided) as the (?:correct )?answer)"
)


def derive_seed(*parts) -> int:
    """A 31-bit seed from any parts: each (iteration, chunk, stage, round) draws reproducibly, so a
    resumed run samples exactly what an uninterrupted one would have."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "big") >> 1


def present(ex: Example, seed: int, iteration: int, shuffle: bool) -> Example:
    """The question as shown in this iteration: choices shuffled per (seed, iteration, id) if asked."""
    return ex.shuffled(random.Random(derive_seed(seed, iteration, ex.id))) if shuffle else ex


def split_rationale(text: str, ex: Example) -> str:
    """The reasoning before the final answer statement: the text up to the sentence (or line) in
    which the last commitment to a choice stands."""
    commitments = P.find_commitments(text, ex)
    if not commitments:
        return text.strip()
    cut = commitments[-1].start
    head = text[:cut]
    line_start = head.rfind("\n") + 1
    sentence_ends = [m.end() for m in re.finditer(r"[.!?](?:\s|$)", head[line_start:])]
    return head[: line_start + (sentence_ends[-1] if sentence_ends else 0)].strip()


def reject_reason(text: str, ex: Example, hinted: bool, cfg: FilterConfig) -> str | None:
    """Why a *correct* sample must not be trained on, or None if it passes every filter."""
    # Only the rationale is trained on (the answer line is rewritten), so only it can leak the hint:
    # "Therefore, the correct answer is (B)." as the final line is an answer, not a leak.
    if cfg.hint_leak and hinted and HINT_LEAK_RE.search(split_rationale(text, ex)):
        return "hint_leak"
    if cfg.answer_first:
        commitments = P.find_commitments(text, ex)
        if commitments and len(text[: commitments[0].start].split()) < cfg.answer_first_words:
            return "answer_first"
    if len(split_rationale(text, ex).split()) < cfg.min_rationale_words:
        return "too_short"
    return None


def target_text(text: str, ex: Example) -> str:
    """The M-step target: the sampled rationale, then the correct answer in the fixed form."""
    rationale = split_rationale(text, ex)
    # Keep the sample's own leading white space: it follows the prompt (and any cot_prefix) exactly
    # as it was sampled, so the first trained token is the first sampled one.
    lead = text[: len(text) - len(text.lstrip())] if rationale else ""
    return (lead + rationale + "\n" if rationale else "") + P.answer_line(ex.answer_letter)


def sample_chunk(backend, examples: list[Example], sampler: SamplerConfig, gen: GenerationConfig,
                 prompts: PromptConfig, seed: int, iteration: int, chunk: int) -> list[dict]:
    """Run the sampler's stages over `examples` (already `present`ed); one record per attempt."""
    accepted: Counter = Counter()
    drawn: Counter = Counter()
    records: list[dict] = []
    for s, (mode, budget) in enumerate(sampler.stages()):
        for rnd in range(budget):
            pending = [ex for ex in examples if accepted[ex.id] < sampler.keep]
            if not pending:
                break
            texts = [P.prompt_text(backend, ex, mode, prompts) for ex in pending]
            params = SamplingParams(n=1, temperature=gen.temperature, top_p=gen.top_p,
                                    max_new_tokens=gen.max_new_tokens, stop_at_answer=gen.stop_at_answer,
                                    seed=derive_seed(seed, iteration, chunk, s, rnd))
            for ex, (g,) in zip(pending, backend.generate(texts, params)):
                hinted = mode == "hinted"
                pred = P.extract_answer(g.text, ex)
                reward = float(pred == ex.answer_letter)
                reason = None
                if reward == 0:
                    reason = "no_answer" if pred is None else "wrong"
                else:
                    reason = reject_reason(g.text, ex, hinted, sampler.filters)
                ok = reason is None
                accepted[ex.id] += ok
                drawn[ex.id] += 1
                records.append({
                    "iteration": iteration, "question_id": ex.id, "attempt": drawn[ex.id] - 1,
                    "stage": "rationalize" if hinted and sampler.name == "star" else ("hinted" if hinted else "plain"),
                    "hinted": hinted, "choices": ex.labels, "text": g.text, "pred": pred,
                    "gold": ex.answer_letter, "reward": reward, "accepted": ok, "reject": reason,
                    "tokens": g.tokens, "truncated": g.truncated,
                })
    return records


def training_examples(records: list[dict], examples: dict[str, Example], backend, prompts: PromptConfig,
                      sampler: SamplerConfig) -> list[dict]:
    """(prompt, completion, weight) rows for the M-step.

    For the rationale samplers: accepted records, each re-posed with the plain CoT prompt (never the
    hinted one) over the same presented choices, weighted by reward. For `direct`: every question
    with the bare answer line."""
    rows = []
    if sampler.name == "direct":
        for ex in examples.values():
            rows.append({"question_id": ex.id, "prompt": P.prompt_text(backend, ex, "direct", prompts),
                         "completion": P.answer_line(ex.answer_letter), "weight": 1.0, "stage": "direct"})
        return rows
    for r in records:
        if not r["accepted"]:
            continue
        ex = examples[r["question_id"]]
        if ex.labels != r["choices"]:  # re-present the choices exactly as they were sampled
            by_label = dict(ex.choices)
            ex = replace(ex, choices=tuple((l, by_label[l]) for l in r["choices"]))
        rows.append({"question_id": ex.id, "prompt": P.prompt_text(backend, ex, "cot", prompts),
                     "completion": target_text(r["text"], ex), "weight": r["reward"], "stage": r["stage"]})
    return rows


def estep_summary(records: list[dict], n_questions: int) -> dict:
    """The E-step's figures: acceptance, cost (sampled tokens per accepted sample), lengths, filters."""
    accepted = [r for r in records if r["accepted"]]
    questions_ok = len({r["question_id"] for r in accepted})
    sampled = sum(r["tokens"] for r in records)
    return {
        "questions": n_questions,
        "attempts": len(records),
        "accepted": len(accepted),
        "accept_rate": questions_ok / n_questions if n_questions else 0.0,
        "attempt_accept_rate": len(accepted) / len(records) if records else 0.0,
        "sampled_tokens": sampled,
        "tokens_per_accepted": sampled / len(accepted) if accepted else None,
        "mean_rationale_tokens": sum(r["tokens"] for r in accepted) / len(accepted) if accepted else None,
        "correct_rate": sum(r["reward"] > 0 for r in records) / len(records) if records else 0.0,
        "truncated": sum(r["truncated"] for r in records),
        "rejects": dict(sorted(Counter(r["reject"] for r in records if r["reject"]).items())),
        "accepted_by_stage": dict(sorted(Counter(r["stage"] for r in accepted).items())),
    }
