"""The `emreason` command: eval, run, report, reread, status, export, models, data.

Every user-fixable problem is an `EmreasonError`, printed as one line (`error: ...`) with exit
status 2 and no traceback; argparse's own usage errors exit 2 as well. A run asked to stop
(SIGTERM, SIGUSR1, Ctrl-C; emreason.stop) keeps its work, says where it stopped, and exits 75.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from .errors import EmreasonError
from .stop import EXIT_STOPPED, Stopped


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {v})")
    return v


def _non_negative_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {s})")
    return v


def _check_out_dir(out: Path, overwrite: bool, marker: str) -> None:
    if (out / marker).exists() and not overwrite:
        raise EmreasonError(f"{out / marker} exists: pass --overwrite to replace it, or choose another --out")
    if out.exists() and not out.is_dir():
        raise EmreasonError(f"--out {out} is a file, not a directory")


def cmd_eval(args) -> int:
    from tqdm import tqdm

    from . import data, models
    from .backends import open_backend
    from .config import BackendConfig, ModelConfig, PromptConfig
    from .evaluate import evaluate
    from .store import write_json, write_jsonl

    out = Path(args.out) if args.out else None
    if out:
        _check_out_dir(out, args.overwrite, "metrics.json")
    models.kind(args.model)  # a mistyped model fails here, before the data is read
    examples = data.load(args.dataset, args.split, args.data_dir, limit=args.limit)
    model_cfg = ModelConfig(name=args.model, dtype=args.dtype, trust_remote_code=args.trust_remote_code,
                            allow_pickle=args.allow_pickle)
    backend_cfg = BackendConfig(name=args.backend, device=args.device, threads=args.threads)
    backend = open_backend(backend_cfg, model_cfg, batch_size=args.batch_size)
    with tqdm(total=len(examples), desc=f"eval {args.mode} {args.dataset}/{args.split}", unit="q",
              file=sys.stderr, disable=args.quiet) as bar:
        result = evaluate(backend, examples, args.mode, PromptConfig(), args.max_new_tokens,
                          args.temperature, args.seed, progress=bar)
    m = result.metrics
    m.update(model=args.model, dataset=args.dataset, split=args.split, limit=args.limit)
    line = (f"{args.model} {args.dataset}/{args.split} {args.mode}: accuracy {m['accuracy']:.3f} "
            f"[95% CI {m['ci_low']:.3f}, {m['ci_high']:.3f}] (n={m['n']}), parse rate {m['parse_rate']:.3f}")
    if args.mode == "loglik":
        line += f", acc_norm {m['accuracy_norm']:.3f}"
    else:
        line += f", mean output {m['mean_rationale_tokens']:.1f} tokens"
    print(line)
    print("predicted letters: " + ", ".join(f"{k} {v}" for k, v in m["pred_distribution"].items()))
    if out:
        write_jsonl(out / "predictions.jsonl", result.records)
        write_json(out / "metrics.json", m)
        print(f"wrote {out / 'metrics.json'} and {out / 'predictions.jsonl'}")
    return 0


def cmd_models(args) -> int:
    from . import models

    if args.action == "list":
        for name, spec in models.ALIASES.items():
            cached = (models.cache_dir() / name / "hf" / "model.safetensors").is_file()
            print(f"{name:22s} {spec.family:6s} {'cached ' if cached else 'fetch  '} {spec.description}")
        print(f"cache: {models.cache_dir()}")
        return 0
    if not args.name:
        raise EmreasonError(f"emreason models {args.action} needs a model alias: {', '.join(models.ALIASES)}")
    path = models.resolve(args.name)
    print(path)
    return 0


def cmd_data(args) -> int:
    from . import data

    if args.action == "list":
        root = data.resolve_data_dir(args.data_dir)
        print(f"data root: {root or '(none: the Hugging Face hub)'}")
        for name, spec in data.DATASETS.items():
            counts = ", ".join(f"{s} {len(data.load(name, s, args.data_dir))}" for s in spec.splits) if root else ""
            print(f"{name:14s} {counts:40s} {spec.description}")
        return 0
    if not args.dataset:
        raise EmreasonError("emreason data show needs a dataset name, e.g. arc_easy")
    examples = data.load(args.dataset, args.split, args.data_dir, limit=args.limit)
    from . import prompts

    for ex in examples:
        print(f"--- {ex.id} (answer {ex.answer_letter})\n{prompts.question_block(ex)}")
    return 0


def cmd_run(args) -> int:
    from .loop import run_from_cli

    return run_from_cli(args)


def cmd_report(args) -> int:
    from .report import report_from_cli

    return report_from_cli(args)


def cmd_reread(args) -> int:
    from .evaluate import reread_from_cli

    return reread_from_cli(args)


def cmd_status(args) -> int:
    from .grid import status_from_cli

    return status_from_cli(args)


def cmd_export(args) -> int:
    from .export import export_from_cli

    return export_from_cli(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emreason", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("eval", help="accuracy of a model on a benchmark split, with a 95%% interval")
    e.add_argument("--model", default="smollm2-135m", help="alias, folder, .gguf, run directory or hub id")
    e.add_argument("--dataset", default="arc_easy", help="arc_easy, arc_challenge, openbookqa, mmlu[:subject], a file")
    e.add_argument("--split", default="test")
    e.add_argument("--limit", type=_positive_int, default=None, help="first N questions")
    e.add_argument("--mode", choices=["cot", "direct", "loglik"], default="cot")
    e.add_argument("--out", default=None, help="folder for metrics.json and predictions.jsonl")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--batch-size", type=_positive_int, default=16)
    e.add_argument("--max-new-tokens", type=_positive_int, default=256)
    e.add_argument("--temperature", type=_non_negative_float, default=0.0)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    e.add_argument("--backend", choices=["hf", "llamacpp", "vllm"], default="hf")
    e.add_argument("--device", default="auto")
    e.add_argument("--threads", type=_positive_int, default=None)
    e.add_argument("--trust-remote-code", action="store_true")
    e.add_argument("--allow-pickle", action="store_true")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("run", help="run the EM loop (or a grid of runs) from a YAML config",
                       epilog="SIGTERM, SIGUSR1 or a first Ctrl-C stop the run after the chunk or M-step "
                              "optimizer step in flight (the M-step with a checkpoint) and exit 75; "
                              "--resume goes on from there. A second Ctrl-C stops at once.")
    r.add_argument("config", help="YAML config (see configs/)")
    r.add_argument("--out", default=None, help="run directory (default: runs/<config name>)")
    r.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    r.add_argument("--overwrite", action="store_true", help="delete an existing run directory first")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set sampler.k=8 (repeatable)")
    r.add_argument("--only", default=None, metavar="REGEX", help="grids: run only the cells whose name matches")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="tables, plots and an HTML report from run directories")
    rep.add_argument("runs", nargs="+", help="run directories (or folders of them)")
    rep.add_argument("--out", required=True, help="folder for the report")
    rep.set_defaults(func=cmd_report)

    rr = sub.add_parser("reread", help="read stored evaluation outputs again with the current answer reader")
    rr.add_argument("runs", nargs="+", help="run directories (or folders of them)")
    rr.add_argument("--dry-run", action="store_true", help="print what would change, write nothing")
    rr.set_defaults(func=cmd_reread)

    st = sub.add_parser("status", help="where runs (or a grid's cells) stand: phase, progress, accuracy, hours")
    st.add_argument("runs", nargs="+", help="run directories, or folders of them (with --config: the grid's --out)")
    st.add_argument("--config", default=None, help="a grid config: list its cells in order, not-started ones too")
    st.set_defaults(func=cmd_status)

    x = sub.add_parser("export", help="a run's iterate as an adapter or merged model, with a model card")
    x.add_argument("run", help="run directory")
    x.add_argument("--out", required=True)
    x.add_argument("--iteration", type=int, default=None, help="default: the latest")
    x.add_argument("--merge", action="store_true", help="merge LoRA into the base weights")
    x.set_defaults(func=cmd_export)

    m = sub.add_parser("models", help="list, fetch or locate the bundled model aliases")
    m.add_argument("action", choices=["list", "fetch", "path"])
    m.add_argument("name", nargs="?")
    m.set_defaults(func=cmd_models)

    d = sub.add_parser("data", help="list datasets with their split sizes, or show questions")
    d.add_argument("action", choices=["list", "show"])
    d.add_argument("dataset", nargs="?")
    d.add_argument("--split", default="test")
    d.add_argument("--limit", type=_positive_int, default=3)
    d.add_argument("--data-dir", default=None)
    d.set_defaults(func=cmd_data)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)  # library deprecation notices, not the user's concern
    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    try:
        return args.func(args)
    except Stopped as e:  # asked to stop (SIGTERM, SIGUSR1, Ctrl-C): the work done is kept
        print(f"stopped: {e}", file=sys.stderr)
        return EXIT_STOPPED
    except EmreasonError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
