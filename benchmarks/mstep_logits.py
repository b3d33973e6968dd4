"""Forward+backward time of the M-step loss with and without the prompt positions' logits (MODEL: an
alias). `.venv/bin/python benchmarks/mstep_logits.py qwen2.5-coder-1.5b`"""
import gzip, json, time, sys
import emreason.train as T
from emreason.models import load
from peft import LoraConfig, get_peft_model
name = sys.argv[1]
rows = [json.loads(l) for l in gzip.open("results/issue3-smollm2-arc_easy/pps/iter_2/train.jsonl.gz", "rt")][:8]
model, tok = load(name, "float32", "cpu")
model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
ex, _ = T.tokenize(rows, tok, 1024)
batches = [T._Collator(tok.pad_token_id)(ex[i:i + 4]) for i in (0, 4)]
print("tokens per batch", [int(b["attention_mask"].sum()) for b in batches], "completion", [int((b["labels"] != -100).sum()) for b in batches])
def step(b):
    inp = {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]}
    loss, _ = T.weighted_nll(model, inp, b["labels"], b["weight"])
    loss.backward()
    return loss.item()
step(batches[0])  # warm-up
for mode in ("trimmed", "full", "trimmed", "full"):
    T._takes_logits_to_keep = (lambda m: False) if mode == "full" else (lambda m: True)
    t = time.perf_counter(); l = [step(b) for b in batches]; print(mode, f"{time.perf_counter() - t:.1f} s", l, flush=True)
