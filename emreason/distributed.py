"""The E-step across Ray workers (`backend.workers > 1`): the same chunks, the same seeds, more engines.

The E-step is already cut into chunks of questions whose seeds depend only on (seed, iteration,
chunk, stage, round). Ray actors, each holding its own backend on the current iterate, draw whole
chunks; the driver appends each finished chunk to the sample log with its commit marker, in
whatever order chunks finish. The log therefore holds exactly the records one worker would have
written (sorted by chunk, they are equal), and a crash loses at most the chunks in flight.
Actors read the iterate from the run directory, so on several nodes it must be on a shared file
system. Needs the optional extra: `pip install 'emreason[ray]'`.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import stop
from .errors import EmreasonError


class _Worker:
    """One Ray actor: a backend on one iterate, drawing chunks with `sample_chunk`."""

    def __init__(self, cfg_json: dict, source: str | None, threads: int | None):
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(threads)
            import torch

            torch.set_num_threads(threads)
        from .backends import open_backend
        from .config import RunConfig

        self.cfg = RunConfig.model_validate(cfg_json)
        self.backend = open_backend(self.cfg.backend, self.cfg.model, Path(source) if source else None,
                                    batch_size=self.cfg.generation.batch_size)

    def sample(self, chunk_examples: list, iteration: int, chunk: int) -> tuple[int, list[dict]]:
        from .samplers import sample_chunk

        c = self.cfg
        return chunk, sample_chunk(self.backend, chunk_examples, c.sampler, c.generation, c.prompts, c.data.seed,
                                   iteration, chunk)


def sample_chunks(cfg, source: Path | None, chunks: dict[int, list], iteration: int, on_done) -> None:
    """Draw `chunks` ({index: presented examples}) on `cfg.backend.workers` Ray actors; call
    `on_done(index, records)` in the driver as each chunk finishes."""
    try:
        import ray
    except ImportError:
        raise EmreasonError("backend.workers > 1 spreads the E-step over Ray workers, but Ray is not installed: "
                            "pip install 'emreason[ray]', or set backend.workers: 1") from None
    b = cfg.backend
    if not ray.is_initialized():
        kwargs = {"address": b.ray_address} if b.ray_address else {"num_cpus": max(b.workers * b.worker_cpus, 1)}
        ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
        stop.reclaim()  # ray.init's SIGTERM handler exits at once: a stop lets the chunks in flight finish
    actor = ray.remote(num_cpus=b.worker_cpus, num_gpus=b.worker_gpus)(_Worker)
    threads = b.threads or max(1, int(b.worker_cpus))
    workers = [actor.remote(cfg.model_dump(mode="json"), str(source) if source else None, threads)
               for _ in range(min(b.workers, len(chunks)))]
    try:
        todo = sorted(chunks)
        running = {}
        for w in workers:  # one chunk in flight per worker; the next goes to whoever finishes first
            if todo:
                c = todo.pop(0)
                running[w.sample.remote(chunks[c], iteration, c)] = w
        while running:
            (ready,), _ = ray.wait(list(running), num_returns=1)
            w = running.pop(ready)
            c, records = ray.get(ready)
            on_done(c, records)
            if todo and not stop.requested():  # a stop lets the chunks in flight finish, starts none
                nxt = todo.pop(0)
                running[w.sample.remote(chunks[nxt], iteration, nxt)] = w
    finally:
        for w in workers:
            ray.kill(w)
