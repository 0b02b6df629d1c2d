"""A whole `harmo train` run: the run directory, data, policy, optional warm-up, evaluations at
the start and end, the GRPO loop with metrics, samples, checkpoints and a progress bar, plots.

Run directory: config.yaml, metrics.jsonl, samples.jsonl, eval_start.json, eval_warmup.json (when a
warm-up ran), eval_end.json, grpo_gain.json (end over warm-up, paired per sample), rewards.png /
accuracy.png / response_length.png / kl.png, checkpoints/step-NNNNNN/, final_model/ (a Hugging Face
model directory), data/ (synthetic set).

Under torchrun with `trainer.parallel` ddp or fsdp (trainer/distributed.py) every rank runs this
loop on its share of each step's prompt groups and of each evaluation; rank 0 writes the files,
prints and shows the progress bar. The warm-up runs whole on every rank, before the model is
wrapped (identical data and seed, so identical weights)."""

from __future__ import annotations

import functools
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_model
from tqdm import tqdm

from harmo_fast.data.jsonl import Dataset, load_dataset
from harmo_fast.data.synth_kinds import write_synth_kind
from harmo_fast.rewards.pipeline import RewardPipeline
from harmo_fast.trainer.checkpoint import latest_checkpoint, load_checkpoint, load_weights, save_checkpoint
from harmo_fast.trainer.config import Config, dump_config
from harmo_fast.trainer.dist_checkpoint import (
    full_weights,
    is_dist_checkpoint,
    load_dist_checkpoint,
    save_dist_checkpoint,
)
from harmo_fast.trainer.distributed import Dist, init_distributed, teardown, wrap_model
from harmo_fast.trainer.engines import build_engine
from harmo_fast.trainer.evaluate import evaluate, format_table, merge_reports, paired_gain, write_report
from harmo_fast.trainer.group_sampling import group_seeds
from harmo_fast.trainer.interrupt import GracefulInterrupt
from harmo_fast.trainer.metrics import MetricsLogger, reward_metrics
from harmo_fast.trainer.plots import write_plots
from harmo_fast.trainer.policy import Policy, autocast, load_policy, reference_model, resolve_device
from harmo_fast.trainer.prompts import PromptEncoder
from harmo_fast.trainer.sampler import PromptSampler
from harmo_fast.trainer.schedule import build_scheduler
from harmo_fast.trainer.step import StepOutput, TrainState, grpo_step
from harmo_fast.trainer.warmup import supervised_warmup

# Parts of a step that are not model compute (the <= 10% budget): data, waiting for rewards, loss math.
TIME_KEYS = ("generation", "data", "logprobs", "rewards_wait", "advantages", "update", "loss")


@dataclass
class RunResult:
    out_dir: Path
    steps_done: int
    interrupted: bool
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)


def default_out_dir() -> Path:
    return Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_data(cfg: Config, out_dir: Path) -> tuple[Dataset, Dataset | None]:
    """Train and test sets; "synth" writes the synthetic set into <out>/data (once)."""
    d = cfg.data
    synth_dir = out_dir / "data"
    if "synth" in (d.train, d.test) and not (synth_dir / "train.jsonl").is_file():
        write_synth_kind(d.synth_kind, synth_dir, d.synth_train, d.synth_test, d.synth_seed)

    def one(spec: str, split: str) -> Dataset:
        return load_dataset(synth_dir / f"{split}.jsonl" if spec == "synth" else spec, skip_bad=d.skip_bad_samples)

    train = one(d.train, "train")
    test = one(d.test, "test") if d.test else None
    for ds in (train, test):
        if ds is not None and ds.skipped:
            print(f"data: skipped {len(ds.skipped)} bad samples of {ds.source}; first: {ds.skipped[0]}")
    return train, test


def _sample_rows(out: StepOutput, k: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(min(k, out.batch.size)):
        s = out.batch.samples[i]
        rows.append(
            {
                "id": s.id,
                "task_type": s.task_type,
                "prompt": s.prompt,
                "answer": s.answer,
                "completion": out.batch.texts[i],
                "length": int(out.batch.lengths[i]),
                "reward": out.rewards.total[i],
                "components": {c: v[i] for c, v in out.rewards.components.items()},
                "correct": bool(out.rewards.verdicts[i].correct),
                "advantage": float(out.advantages[i]),
            }
        )
    return rows


def _batch_record(out: StepOutput, first_group: int) -> dict[str, Any]:
    """What the step metrics need of this rank's batch, with global group ids."""
    b, r = out.batch, out.rewards
    return {
        "total": list(r.total),
        "components": {k: list(v) for k, v in r.components.items()},
        "correct": [bool(v.correct) for v in r.verdicts],
        "task_types": [s.task_type for s in b.samples],
        "group_ids": [g + first_group for g in b.group_ids.tolist()],
        "lengths": b.lengths.tolist(),
        "truncated": b.truncated.tolist(),
    }


def _merge_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The ranks' batch records as one global batch, in rank order."""
    out: dict[str, Any] = {k: [x for r in records for x in r[k]] for k in records[0] if k != "components"}
    out["components"] = {k: [x for r in records for x in r["components"][k]] for k in records[0]["components"]}
    return out


def _step_metrics(st: TrainState, out: StepOutput, lr: float, seconds: float, first_group: int) -> dict[str, float]:
    comm = st.dist.comm_seconds
    r, g = out.rewards, _merge_records(st.dist.gather(_batch_record(out, first_group)))
    m = reward_metrics(
        g["total"],
        g["components"],
        g["correct"],
        g["task_types"],
        g["group_ids"],
        g["lengths"],
        g["truncated"],
        st.cfg.rewards.format.enabled,
    )
    m.update(out.stats)
    m["lr"] = lr
    m["nan_skipped"] = st.nan_skipped
    st.timings["data"] = st.engine.encode_seconds
    for k in TIME_KEYS:
        m[f"time/{k}"] = st.timings.get(k, 0.0)
    m["time/rewards_total"] = float(r.timings.get("total", sum(r.timings.values()))) if r.timings else float("nan")
    m["time/step"] = seconds
    m["time/comm"] = comm
    m["time/other"] = seconds - sum(
        st.timings.get(k, 0.0) for k in ("generation", "logprobs", "rewards_wait", "advantages", "update")
    )
    m["tokens_per_second"] = float(sum(g["lengths"])) / seconds
    return m


def _evaluate(name: str, st: TrainState, test: Dataset | None, out_dir: Path) -> dict[str, Any] | None:
    """The evaluation `name`; with several ranks each evaluates every world-th sample and the
    reports are merged (ranks in lockstep first agree on the number of generate calls)."""
    e, d = st.cfg.eval, st.dist
    if test is None:
        return None
    samples = test.samples[: e.max_samples] if e.max_samples else test.samples
    shard = samples[d.rank :: d.world]
    calls = -(-len(shard) // e.batch_size)
    padding = d.max(calls) - calls if d.lockstep else 0
    t0 = time.perf_counter()
    report = evaluate(
        st.engine,
        st.rewards,
        shard,
        batch_size=e.batch_size,
        max_new_tokens=e.max_new_tokens,
        format_enabled=st.cfg.rewards.format.enabled,
    )
    for _ in range(padding):
        st.engine.generate(samples[:1], 1, greedy=True, max_new_tokens=e.max_new_tokens)
    if d.active:
        report = merge_reports(d.gather(report), [s.id for s in samples])
    report["seconds"] = time.perf_counter() - t0
    if d.is_main:
        write_report(report, out_dir / f"eval_{name}.json")
        print(format_table(report, f"eval_{name} ({len(samples)} samples, {report['seconds']:.0f}s)"))
    return report


def _write_gain(out_dir: Path) -> None:
    """GRPO's own gain: eval_end over eval_warmup (eval_start without a warm-up), paired per sample,
    printed and written to grpo_gain.json (also after a resume: the earlier reports are read back)."""
    end_path = out_dir / "eval_end.json"
    base_path = next((p for p in (out_dir / "eval_warmup.json", out_dir / "eval_start.json") if p.is_file()), None)
    if base_path is None or not end_path.is_file():
        return
    base, end = json.loads(base_path.read_text()), json.loads(end_path.read_text())
    if "correct" not in base or "correct" not in end:  # a report written before per-sample results
        return
    gain = paired_gain(base, end)
    gain["baseline"] = base_path.stem
    (out_dir / "grpo_gain.json").write_text(json.dumps(gain, indent=2) + "\n")
    print(
        f"GRPO gain over {base_path.stem}: {gain['gain']:+.1%} (paired standard error {gain['stderr']:.1%}; "
        f"{gain['gained']} samples gained, {gain['lost']} lost)"
    )


def _export(policy: Policy, out_dir: Path, dist: Dist) -> None:
    """final_model/ by rank 0 (from the gathered weights when the model is wrapped)."""
    weights = full_weights(policy.model) if dist.active else None
    if not dist.is_main:
        return
    target = out_dir / "final_model"
    policy.model.save_pretrained(target, state_dict=weights)
    policy.processor.save_pretrained(target)


def build_optimizer(cfg: Config, model: Any) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over the trainable parameters and its learning-rate schedule."""
    a, t = cfg.algorithm, cfg.trainer
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=t.lr, betas=tuple(t.adam_betas), eps=t.adam_eps, weight_decay=t.weight_decay
    )
    scheduler = build_scheduler(
        optimizer, t.lr_warmup_steps, t.steps * a.num_iterations * a.num_minibatches, t.min_lr_ratio, t.lr_schedule
    )
    return optimizer, scheduler


def prompt_encoder(cfg: Config, policy: Policy) -> PromptEncoder:
    """The run's prompts (template, system prompt, chat template): rollouts, evaluations and the
    warm-up all use it."""
    return PromptEncoder(policy.processor, policy.is_vlm, cfg.data.prompt_template, cfg.data.system_prompt)


def build_state(cfg: Config, rewards: Any | None = None, dist: Dist | None = None) -> TrainState:
    """Policy, rollout engine, optimizer, lr schedule and reward pipeline of a run (no reference
    model yet: it is the policy as GRPO starts, after any warm-up; the model not yet wrapped for
    `dist`, see `distribute`)."""
    device = resolve_device(cfg.trainer.device)
    policy = load_policy(cfg.model, device, cfg.trainer.seed)
    encoder = prompt_encoder(cfg, policy)
    engine = build_engine(
        cfg, model=policy.model, encoder=encoder, device=device, autocast=lambda: autocast(cfg.model, device)
    )
    optimizer, scheduler = build_optimizer(cfg, policy.model)
    return TrainState(
        cfg,
        policy,
        engine,
        rewards if rewards is not None else RewardPipeline(cfg.rewards),
        optimizer,
        scheduler,
        dist=dist or Dist(),
    )


@dataclass
class Run:
    """Everything a run's stages share."""

    cfg: Config
    out_dir: Path
    train_set: Dataset
    test_set: Dataset | None
    st: TrainState
    logger: MetricsLogger
    sampler: PromptSampler
    result: RunResult

    def close(self) -> None:
        self.logger.close()
        self.st.rewards.close()
        self.st.engine.close()


def train(
    cfg: Config,
    out_dir: str | Path | None = None,
    resume: bool = False,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    rewards: Any | None = None,
) -> RunResult:
    """Run (or, with resume=True, continue from the latest checkpoint in `out_dir`) a GRPO run.

    on_step(step, metrics): called after each step's metrics are logged.
    rewards: a reward pipeline to use instead of `RewardPipeline(cfg.rewards)`: anything with
        submit(list[RewardSample]) -> Future[RewardResult] and close(). The run closes it.
    """
    d = init_distributed(cfg.trainer.parallel, resolve_device(cfg.trainer.device), cfg.trainer.dist_timeout)
    try:
        out_dir = Path(d.broadcast(str(out_dir if out_dir is not None else default_out_dir())))
        ckpt = checkpoint_to_resume(out_dir) if resume else None
        run = open_run(cfg, out_dir, rewards, d)
        try:
            if ckpt is None:
                evaluate_and_warm_up(run)
            if cfg.algorithm.beta > 0:
                run.st.ref_model = _reference(run.st.policy, out_dir, fresh=ckpt is None, main=d.is_main)
            distribute(run)
            start = restore(run, ckpt) if ckpt is not None else 0
            run.result.steps_done = start
            grpo_loop(run, start, on_step)
            if not run.result.interrupted:
                finish(run)
            return run.result
        finally:
            run.close()
    finally:
        teardown(d)


def checkpoint_to_resume(out_dir: Path) -> Path:
    ckpt = latest_checkpoint(out_dir)
    if ckpt is None:
        raise FileNotFoundError(f"--resume {out_dir}: no checkpoint under {out_dir / 'checkpoints'}")
    return ckpt


def open_run(cfg: Config, out_dir: Path, rewards: Any | None, dist: Dist | None = None) -> Run:
    """The run directory with its config, seeds, data, train state, metrics logger and prompt
    sampler (rank 0 writes the directory and any synthetic data; the other ranks then read it)."""
    d = dist or Dist()
    prompts = cfg.algorithm.prompts_per_step
    if prompts % d.world:
        raise ValueError(
            f"algorithm.prompts_per_step={prompts} does not split into whole groups over {d.world} ranks; "
            f"use a multiple of {d.world}"
        )
    threads = cfg.trainer.num_threads
    if threads is not None and threads < 1:
        raise ValueError(f"trainer.num_threads must be >= 1 or null, got {threads}")
    if d.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, out_dir / "config.yaml")
        train_set, test_set = load_data(cfg, out_dir)
    d.barrier()
    if not d.is_main:
        train_set, test_set = load_data(cfg, out_dir)
    torch.set_num_threads(cfg.trainer.num_threads or max(1, (os.cpu_count() or 1) // d.local_world))
    seed_everything(cfg.trainer.seed)
    st = build_state(cfg, rewards, d)
    logger = MetricsLogger(out_dir, cfg.logging.tensorboard and d.is_main)
    sampler = PromptSampler(len(train_set), cfg.trainer.seed, cfg.data.shuffle)
    return Run(cfg, out_dir, train_set, test_set, st, logger, sampler, RunResult(out_dir, 0, False))


def distribute(run: Run) -> None:
    """Wrap the policy for `trainer.parallel` (after the warm-up and the reference copy) and build
    the optimizer over the wrapped parameters (it has no state yet)."""
    st = run.st
    if st.dist.active:
        wrap_model(st.policy.model, st.dist)
        st.optimizer, st.scheduler = build_optimizer(run.cfg, st.policy.model)


def restore(run: Run, ckpt: Path) -> int:
    """Load the checkpoint's weights, optimizer, schedule, counters and data order; its step. A
    multi-process checkpoint loads with any world size; a single-process one with parallel none or ddp."""
    st = run.st
    if is_dist_checkpoint(ckpt):
        state = load_dist_checkpoint(ckpt, model=st.policy.model, optimizer=st.optimizer, scheduler=st.scheduler)
    elif st.dist.mode == "fsdp":
        raise ValueError(f"{ckpt} is a single-process checkpoint: resume it with trainer.parallel=none or ddp")
    else:
        state = load_checkpoint(ckpt, model=st.policy.model, optimizer=st.optimizer, scheduler=st.scheduler)
    st.nan_skipped = state["nan_skipped"]
    run.sampler.load_state_dict(state["data"])
    if st.dist.is_main:
        run.logger.truncate_after(state["step"])
        print(f"resumed from {ckpt} at step {state['step']}")
    return state["step"]


def evaluate_and_warm_up(run: Run) -> None:
    """Before GRPO: the start evaluation, then the supervised warm-up and its evaluation."""
    cfg, st = run.cfg, run.st
    if cfg.eval.at_start:
        run.result.evals["start"] = _evaluate("start", st, run.test_set, run.out_dir)
    w = cfg.warmup
    if w.steps <= 0:
        return
    info = supervised_warmup(
        st.policy.model,
        st.policy.processor,
        run.train_set.samples,
        steps=w.steps,
        lr=w.lr,
        batch_size=w.batch_size,
        seed=cfg.trainer.seed,
        encoder=prompt_encoder(cfg, st.policy),
        autocast=lambda: autocast(cfg.model, st.policy.device),
    )
    if st.dist.is_main:
        print(
            f"warm-up: {w.steps} steps, loss {info['loss_first']:.3f} -> {info['loss_final']:.3f} "
            f"in {info['seconds']:.0f}s"
        )
    run.result.evals["warmup"] = _evaluate("warmup", st, run.test_set, run.out_dir)


def grpo_loop(run: Run, start: int, on_step: Callable[[int, dict[str, float]], None] | None) -> None:
    """GRPO steps start+1 .. trainer.steps with checkpoints; on Ctrl-C (on any rank) a
    checkpoint, then stop."""
    cfg, d = run.cfg, run.st.dist
    with GracefulInterrupt() as interrupt, _progress(cfg, start, d.is_main) as bar:
        for step in range(start + 1, cfg.trainer.steps + 1):
            metrics = run_step(run, step)
            bar.update(1)
            bar.set_postfix(
                reward=f"{metrics['reward/total_mean']:.2f}",
                acc=f"{metrics['accuracy']:.2f}",
                len=f"{metrics['length/mean']:.0f}",
            )
            if on_step is not None:
                on_step(step, metrics)
            interrupt.requested = bool(d.max(int(interrupt.requested)))
            every = cfg.checkpoint.every
            if interrupt.requested or (every and step % every == 0) or step == cfg.trainer.steps:
                _save(run, step)
            if interrupt.requested:
                run.result.interrupted = True
                if d.is_main:
                    print(
                        f"interrupted: checkpoint saved at step {step}; "
                        f"continue with `harmo train --resume {run.out_dir}`"
                    )
                return


def run_step(run: Run, step: int) -> dict[str, float]:
    """One GRPO step on the sampler's next prompts (this rank's share of their groups, each group
    sampled from its own seed); its metrics (and samples) logged."""
    cfg, st, d = run.cfg, run.st, run.st.dist
    share = cfg.algorithm.prompts_per_step // d.world
    first = d.rank * share
    indices = run.sampler.next(cfg.algorithm.prompts_per_step)[first : first + share]
    samples = [run.train_set.samples[i] for i in indices]
    st.engine.set_group_seeds(group_seeds(cfg.trainer.seed, step, first, share))
    lr = st.scheduler.get_last_lr()[0]
    st.timings.clear()
    d.comm_seconds = 0.0
    t0 = time.perf_counter()
    out = grpo_step(st, samples)
    metrics = _step_metrics(st, out, lr, time.perf_counter() - t0, first)
    every = cfg.logging.sample_every
    if d.is_main:
        run.logger.log(step, metrics)
        if every and (step % every == 0 or step == 1):
            run.logger.log_samples(step, _sample_rows(out, cfg.logging.num_samples))
    run.result.steps_done = step
    return metrics


def finish(run: Run) -> None:
    """After GRPO: the end evaluation and GRPO's gain, plots, the exported model."""
    cfg, main = run.cfg, run.st.dist.is_main
    if cfg.eval.at_end:
        run.result.evals["end"] = _evaluate("end", run.st, run.test_set, run.out_dir)
        if main:
            _write_gain(run.out_dir)
    if cfg.logging.plots and main:
        write_plots(run.logger.metrics_path, run.out_dir)
    if cfg.checkpoint.save_final_model:
        _export(run.st.policy, run.out_dir, run.st.dist)


def _save(run: Run, step: int) -> None:
    st = run.st
    save = save_checkpoint
    if st.dist.active:
        save = functools.partial(save_dist_checkpoint, dist=st.dist)
    save(
        run.out_dir,
        step,
        model=st.policy.model,
        optimizer=st.optimizer,
        scheduler=st.scheduler,
        state={"nan_skipped": st.nan_skipped, "data": run.sampler.state_dict()},
        config=run.cfg,
        keep_last=run.cfg.checkpoint.keep_last,
    )


def _reference(policy: Policy, out_dir: Path, fresh: bool, main: bool = True) -> Any:
    """The frozen reference: the policy as GRPO starts (after any warm-up), kept on disk (by rank
    0) for resumes."""
    ref_dir = out_dir / "reference"
    ref = reference_model(policy)
    if fresh:
        if not main:
            return ref
        ref_dir.mkdir(exist_ok=True)
        save_model(ref, str(ref_dir / "weights.safetensors"))
    else:
        load_weights(ref, ref_dir)
    return ref


def _progress(cfg: Config, start: int, main: bool) -> Any:
    return tqdm(
        total=cfg.trainer.steps,
        initial=start,
        disable=not (cfg.logging.progress_bar and main),
        desc="GRPO",
        unit="step",
        dynamic_ncols=True,
    )
