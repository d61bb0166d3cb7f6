"""Training-step benchmark: ratios against references measured in the same process.

Every case trains on the same pre-drawn batches (data generation is timed apart), cases take turns within
each repeat so that load from other processes hits them alike, and each figure is the median over repeats.
On the CPU the clock is this process's CPU time (the machine is shared: another process's load then
inflates neither side of a ratio); only the thread comparison, where CPU time would count idle spinning
workers, uses the wall clock. References: a naive tutorial loop (one nn.LSTM call per decoder step) and a
raw fused loop (`RawReference`: the fastest plain PyTorch step of the same model, no project code), the limit
a gamma = 1 step is held against (`fused_vs_reference`). GFLOP/s and the fraction of a GEMM roofline per case
are counted as `bench/flops.py` says.
"""

from __future__ import annotations

import itertools
import json
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bench import contracts
from bench.flops import StepShapes, roofline_seconds, step_shapes
from playground.core.config import TrainConfig
from playground.core.devices import resolve_device
from playground.core.tasks import Batch
from playground.inspection.exposure import PROBED_EXAMPLES
from playground.inspection.probe import recovery_probe
from playground.model.tokens import PAD_ID, SOS_ID
from playground.training.stacked import StackedTrainer
from playground.training.trainer import Trainer

DEFAULT = TrainConfig()  # reverse, len 3..8, alphabet 10, emb 32, hidden 128, 1 layer, batch 64
LARGE = DEFAULT.replace(max_len=12, emb_dim=64, hidden_dim=256, num_layers=2)
RATIOS = (0.0, 0.5, 1.0)
# the variants timed against the specification's model, at each of FAMILY_RATIOS (the Transformer at the same d
# and layers, 2 heads)
FAMILY = {"lstm": {}, "attention": {"attention": "dot"}, "gru": {"cell": "gru"},
          "transformer": {"architecture": "transformer", "heads": 2}}
FAMILY_RATIOS = (1.0, 0.5)
K_RATIOS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the compare page's K = 5 models; K = 15 is these x 3 seeds
CLOCK: Callable[[], float] = time.process_time  # `run` picks the wall clock off the CPU


@dataclass(frozen=True)
class Plan:
    """How long to measure: `repeats` rounds of `steps` steps per case after `warmup` steps."""

    warmup: int
    steps: int
    repeats: int
    scaling_lengths: tuple[int, ...]
    scaling_hidden: tuple[int, ...]

    def shorter(self) -> Plan:
        """For the slow cases: one warm-up step, half the steps, at most 7 repeats."""
        return Plan(1, max(1, self.steps // 2), min(self.repeats, 7), self.scaling_lengths, self.scaling_hidden)


FULL = Plan(warmup=5, steps=10, repeats=11, scaling_lengths=(8, 16, 32, 50), scaling_hidden=(64, 128, 256, 512))
QUICK = Plan(warmup=1, steps=2, repeats=2, scaling_lengths=(8, 16), scaling_hidden=(64, 128))


class RawReference(nn.Module):
    """The fused step written plainly: embeddings, encoder nn.LSTM, decoder nn.LSTM over the shifted target."""

    def __init__(self, config: TrainConfig, src_vocab: int, tgt_vocab: int) -> None:
        super().__init__()
        layers, hidden = config.num_layers, config.hidden_dim
        self.src_embedding = nn.Embedding(src_vocab, config.emb_dim, padding_idx=PAD_ID)
        self.encoder = nn.LSTM(config.emb_dim, hidden, layers, batch_first=True)
        self.tgt_embedding = nn.Embedding(tgt_vocab, config.emb_dim, padding_idx=PAD_ID)
        self.decoder = nn.LSTM(config.emb_dim, hidden, layers, batch_first=True)
        self.fc_out = nn.Linear(hidden, tgt_vocab)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        _, state = self.encoder(self.src_embedding(src))
        shifted = torch.cat([torch.full_like(tgt[:, :1], SOS_ID), tgt[:, :-1]], dim=1)
        output, _ = self.decoder(self.tgt_embedding(shifted), state)
        return self.fc_out(output)


def reference_step(config: TrainConfig, trainer: Trainer, batches: list[Batch]) -> Callable[[], None]:
    """One raw fused step per call: cross-entropy over non-pad tokens, backward, clipping, Adam, loss.item()."""
    model = RawReference(config, len(trainer.task.src_vocab), len(trainer.task.tgt_vocab)).to(trainer.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    stream = itertools.cycle([(b.src.to(trainer.device), b.tgt.to(trainer.device)) for b in batches])

    def step() -> None:
        src, tgt = next(stream)
        loss = nn.functional.cross_entropy(model(src, tgt).flatten(0, 1), tgt.flatten(), ignore_index=PAD_ID)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        loss.item()

    return step


class NaiveSeq2Seq(RawReference):
    """The tutorials' decoder loop: nn.LSTM on one step at a time, Linear per step, a Python coin per step."""

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, ratio: float = 1.0) -> torch.Tensor:
        _, state = self.encoder(self.src_embedding(src))
        batch, length = tgt.shape
        outputs = torch.zeros(batch, length, self.fc_out.out_features, device=src.device)
        token = torch.full((batch,), SOS_ID, dtype=torch.long, device=src.device)
        for t in range(length):
            output, state = self.decoder(self.tgt_embedding(token).unsqueeze(1), state)
            prediction = self.fc_out(output.squeeze(1))
            outputs[:, t] = prediction
            token = tgt[:, t] if random.random() < ratio else prediction.argmax(1)
        return outputs


def naive_step(config: TrainConfig, trainer: Trainer, batches: list[Batch]) -> Callable[[], None]:
    """One naive training step per call: loss summed step by step over non-pad tokens, Adam, clipping."""
    model = NaiveSeq2Seq(config, len(trainer.task.src_vocab), len(trainer.task.tgt_vocab)).to(trainer.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    criterion = nn.CrossEntropyLoss(ignore_index=PAD_ID, reduction="sum")
    stream = itertools.cycle([(b.src.to(trainer.device), b.tgt.to(trainer.device)) for b in batches])

    def step() -> None:
        src, tgt = next(stream)
        logits = model(src, tgt, config.teacher_forcing_ratio)
        loss = sum(criterion(logits[:, t], tgt[:, t]) for t in range(tgt.shape[1])) / (tgt != PAD_ID).sum()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        loss.item()

    return step


def project_step(config: TrainConfig, batches: list[Batch]) -> Callable[[], None]:
    """Trainer.train_step on `batches`."""
    trainer = Trainer(config)
    trainer.batches = itertools.cycle(batches)
    return trainer.train_step


def draw_batches(config: TrainConfig, count: int = 16) -> tuple[Trainer, list[Batch]]:
    trainer = Trainer(config)
    return trainer, [next(trainer.batches) for _ in range(count)]


def measure(cases: dict[str, Callable[[], Any]], plan: Plan, threads: dict[str, int] | None = None,
            wall_clock: bool = False) -> dict[str, float]:
    """Median steps/s per case; cases alternate within every repeat. The wall clock where a case may use several
    threads (CPU time would count them all), else CLOCK."""
    threads = threads or {}
    default_threads = torch.get_num_threads()
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for repeat in range(plan.repeats + 1):
        for name, step in cases.items():
            torch.set_num_threads(threads.get(name, default_threads))
            count = plan.warmup if repeat == 0 else plan.steps
            clock = time.perf_counter if wall_clock or name in threads else CLOCK
            start = clock()
            for _ in range(count):
                step()
            _synchronize()
            if repeat:
                rates[name].append(count / (clock() - start))
    torch.set_num_threads(default_threads)
    return {name: statistics.median(values) for name, values in rates.items()}


def _synchronize() -> None:
    """Queued GPU work belongs to the steps that queued it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    if torch.backends.mps.is_available():
        torch.mps.synchronize()


def size_cases(config: TrainConfig) -> tuple[dict[str, Callable[[], Any]], StepShapes]:
    """Naive, the raw fused reference and project at each gamma; and the step's matmul shapes."""
    trainer, batches = draw_batches(config)
    cases = {"naive": naive_step(config, trainer, batches), "reference": reference_step(config, trainer, batches)}
    cases |= {f"project_gamma_{ratio:g}": project_step(config.replace(teacher_forcing_ratio=ratio), batches)
              for ratio in RATIOS}
    return cases, step_shapes(config, batches, len(trainer.task.tgt_vocab))


def family_cases(config: TrainConfig) -> dict[str, Callable[[], Any]]:
    """Trainer.train_step of each FAMILY variant at each FAMILY_RATIOS gamma, on the same batches."""
    batches = draw_batches(config)[1]
    return {f"{name}_gamma_{ratio:g}": project_step(config.replace(teacher_forcing_ratio=ratio, **changes), batches)
            for name, changes in FAMILY.items() for ratio in FAMILY_RATIOS}


FAMILY_RATIO_KEYS = (("attention_vs_none", "attention"), ("gru_vs_lstm", "gru"), ("transformer_vs_lstm", "transformer"))


def family_ratios(rates: dict[str, float]) -> dict[str, dict[str, float]]:
    """attention_vs_none, gru_vs_lstm and transformer_vs_lstm: each variant's steps/s over the LSTM's, per gamma
    (above 1: faster); and transformer_partial_vs_full: the Transformer's gamma = 0.5 step against its own gamma = 1
    step (the cached steps that choose the inputs, then one pass)."""
    ratios = {key: {f"gamma_{ratio:g}": round(rates[f"{name}_gamma_{ratio:g}"] / rates[f"lstm_gamma_{ratio:g}"], 3)
                    for ratio in FAMILY_RATIOS}
              for key, name in FAMILY_RATIO_KEYS}
    ratios["transformer_partial_vs_full"] = {
        "gamma_0.5": round(rates["transformer_gamma_0.5"] / rates["transformer_gamma_1"], 3)}
    return ratios


def batched_cases(config: TrainConfig, size: int,
                  batches: list[Batch] | None = None) -> tuple[dict[str, Callable[[], Any]], str]:
    """K models (K_RATIOS x K / 5 seeds) in the K-model engine (as it chooses to execute them, which it also
    returns) against K Trainers stepped one after another. Time them on the wall clock: the engine may use several
    cores (as many as torch's threads leave free), the Trainers one."""
    batches = batches or draw_batches(config)[1]
    configs = [config.replace(teacher_forcing_ratio=K_RATIOS[k % len(K_RATIOS)], seed=config.seed + k // len(K_RATIOS))
               for k in range(size)]
    steppers = [project_step(each, batches) for each in configs]
    engine = StackedTrainer(configs)
    engine.batches = itertools.cycle(batches)
    execution = f"{engine.workers} x {'+'.join(sorted({group.path for group in engine.groups}))}"
    return {f"sequential_k{size}": lambda: [step() for step in steppers],
            f"batched_k{size}": engine.train_step}, execution


def arithmetic(rates: dict[str, float], shapes: StepShapes, roofline: float) -> dict[str, dict[str, float]]:
    """GFLOP/s of each case and its fraction of the GEMM roofline; a `_k<K>` case does K models' work."""
    result: dict[str, dict[str, float]] = {}
    for name, rate in rates.items():
        models = int(name.rsplit("_k", 1)[1]) if "_k" in name else 1
        result[name] = {"gflops": round(shapes.flops * models * rate / 1e9, 2),
                        "roofline_fraction": round(roofline * models * rate, 3)}
    return result


def run(plan: Plan = FULL, device: str = "cpu", threads: int = 1) -> dict[str, Any]:
    started = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    global CLOCK
    CLOCK = time.process_time if resolve_device(device).type == "cpu" else time.perf_counter
    default, large = DEFAULT.replace(device=device), LARGE.replace(device=device)
    result: dict[str, Any] = {"device": str(resolve_device(device)), "torch": torch.__version__,
                              "threads": torch.get_num_threads(),
                              "default_size": _describe(default), "large_size": _describe(large)}
    cases, shapes = size_cases(default)
    rates = measure(cases, plan)
    # apart: idle OpenMP workers keep spinning after a 2-thread step and would slow whichever case came next
    batches = draw_batches(default)[1]
    rates |= measure({f"threads_{n}": project_step(default, batches) for n in (1, 2)}, plan, {"threads_1": 1,
                                                                                               "threads_2": 2})
    large_cases, large_shapes = size_cases(large)
    large_rates = measure(large_cases, plan.shorter())
    result["steps_per_second"] = {"default": _rounded(rates), "large": _rounded(large_rates)}
    result["speedup_vs_naive"] = round(rates["project_gamma_0.5"] / rates["naive"], 3)
    result["partial_vs_fused"] = round(rates["project_gamma_0.5"] / rates["project_gamma_1"], 3)
    result["fused_vs_reference"] = round(rates["project_gamma_1"] / rates["reference"], 3)
    result["fused_vs_reference_large"] = round(large_rates["project_gamma_1"] / large_rates["reference"], 3)
    result["speedup_vs_naive_large"] = round(large_rates["project_gamma_0.5"] / large_rates["naive"], 3)
    result["partial_vs_fused_large"] = round(large_rates["project_gamma_0.5"] / large_rates["project_gamma_1"], 3)
    result["merged_vs_per_step"] = round(rates["project_gamma_0.5"] / rates["project_gamma_0"], 3)
    result["two_vs_one_thread"] = round(rates["threads_2"] / rates["threads_1"], 3)
    family_rates = measure(family_cases(default), plan.shorter())
    result["steps_per_second"]["family"] = _rounded(family_rates)
    result |= family_ratios(family_rates)
    k5_cases, k5_execution = batched_cases(default, 5)
    batched_rates = measure(k5_cases, plan.shorter(), wall_clock=True)
    result["steps_per_second"]["k5"] = _rounded(batched_rates)
    result["batched_vs_sequential"] = round(batched_rates["batched_k5"] / batched_rates["sequential_k5"], 3)
    k15_cases, k15_execution = batched_cases(default, 15)
    k15_rates = measure(k15_cases, plan.shorter().shorter(), wall_clock=True)
    result["k_engine_execution"] = {"k5": k5_execution, "k15": k15_execution}
    result["steps_per_second"]["k15"] = _rounded(k15_rates)
    result["batched15_vs_sequential"] = round(k15_rates["batched_k15"] / k15_rates["sequential_k15"], 3)
    roofline = roofline_seconds(shapes, resolve_device(device), CLOCK, _synchronize)
    large_roofline = roofline_seconds(large_shapes, resolve_device(device), CLOCK, _synchronize)
    result["roofline_gflops"] = {"default": round(shapes.flops / roofline / 1e9, 2),
                                 "large": round(large_shapes.flops / large_roofline / 1e9, 2)}
    result["arithmetic"] = {"default": arithmetic(rates | batched_rates | k15_rates, shapes, roofline),
                            "large": arithmetic(large_rates, large_shapes, large_roofline)}
    result["scaling"] = scaling(default, plan)
    result["batched_min_vs_sequential"] = min(row["batched_vs_sequential"] for row in result["scaling"].values())
    result["probe_vs_free_running"] = probe_cost(default, plan)
    result["beyond_eval_cost"] = evaluation_cost(default, plan)
    data = draw_batches(default)[0].batches
    result["data_batches_per_second"] = round(measure({"data": lambda: next(data)}, plan)["data"], 1)
    result["contracts"] = contracts.check()
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def evaluation_cost(config: TrainConfig, plan: Plan) -> float:
    """What validation to twice the training length (test_max_len = 2 max_len, the same number of examples)
    costs against validation on the training lengths: seconds per evaluation, one over the other."""
    cases = {name: Trainer(variant).evaluate for name, variant in (
        ("training_lengths", config), ("to_twice", config.replace(test_max_len=min(2 * config.max_len, 50))))}
    rates = measure(cases, plan.shorter().shorter())
    return round(rates["training_lengths"] / rates["to_twice"], 3)


def scaling(config: TrainConfig, plan: Plan) -> dict[str, dict[str, Any]]:
    """Milliseconds per step at gamma = 0.5 (naive alongside) as the target length and the hidden size grow, and
    the K = 5 engine against 5 Trainers at each size (fewer repeats: the sequential case is 5 steps long).

    Lengths stop at 50, the longest sequence TrainConfig allows.
    """
    table: dict[str, dict[str, Any]] = {}
    variants = [(f"target_len_{n}", config.replace(min_len=n, max_len=n)) for n in plan.scaling_lengths]
    variants += [(f"hidden_{h}", config.replace(hidden_dim=h)) for h in plan.scaling_hidden]
    for name, variant in variants:
        trainer, batches = draw_batches(variant, count=4)
        rates = measure({"project": project_step(variant, batches), "naive": naive_step(variant, trainer, batches)},
                        plan.shorter())
        k5_cases, execution = batched_cases(variant, 5, batches)
        k5 = measure(k5_cases, plan.shorter().shorter(), wall_clock=True)
        table[name] = {"k_engine_execution": execution, "project_ms": round(1000 / rates["project"], 2),
                       "naive_ms": round(1000 / rates["naive"], 2),
                       "speedup_vs_naive": round(rates["project"] / rates["naive"], 3),
                       "batched_k5_ms": round(1000 / k5["batched_k5"], 2),
                       "batched_vs_sequential": round(k5["batched_k5"] / k5["sequential_k5"], 3)}
    return table


def probe_cost(config: TrainConfig, plan: Plan) -> float:
    """What the recovery probe over PROBED_EXAMPLES validation examples costs, in free-running validation passes
    over the same examples (the evaluation's forward at gamma = 0). A branch that recovers is decoded to its end,
    so the probe costs more the more often the model recovers: the model trains first, at gamma = 0.5, which
    recovers more often than gamma = 1 (100 x the plan's steps: 1,000 for a measurement)."""
    trainer = Trainer(config.replace(val_size=PROBED_EXAMPLES, teacher_forcing_ratio=0.5))
    for _ in range(plan.steps * 100):
        trainer.train_step()
    model, (src, tgt) = trainer.model.eval(), trainer.validation

    def free_running() -> None:
        with torch.inference_mode():
            model(src, tgt, 0.0)

    rates = measure({"free_running": free_running,
                     "probe": lambda: recovery_probe(model, trainer.task, trainer.data.val_pairs)}, plan.shorter())
    return round(rates["free_running"] / rates["probe"], 3)


def _describe(config: TrainConfig) -> dict[str, Any]:
    return {"task": config.task, "min_len": config.min_len, "max_len": config.max_len,
            "alphabet_size": config.alphabet_size, "vocab": config.alphabet_size + 4, "emb_dim": config.emb_dim,
            "hidden_dim": config.hidden_dim, "num_layers": config.num_layers, "batch_size": config.batch_size,
            "coin": config.coin}


def _rounded(rates: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 2) for name, value in rates.items()}


def report(result: dict[str, Any]) -> str:
    """The human-readable part: sizes, steps/s and the ratios."""
    lines = [f"device {result['device']}, torch {result['torch']}, {result['threads']} thread(s); "
             f"machine shared with other processes: compare ratios, not absolute rates"]
    for size in ("default", "large"):
        lines.append(f"{size} size: {result[f'{size}_size']}")
        lines += [f"  {name:<24} {rate:8.1f} steps/s" for name, rate in result["steps_per_second"][size].items()]
    lines.append(f"K = {len(K_RATIOS)} models (ratios {', '.join(map(str, K_RATIOS))}) at the default size:")
    for k in ("k5", "k15"):
        lines += [f"  {name:<24} {rate:8.1f} steps/s" for name, rate in result["steps_per_second"][k].items()]
    lines.append("the model family at the default size (attention: dot; Transformer: 2 heads):")
    lines += [f"  {name:<24} {rate:8.1f} steps/s" for name, rate in result["steps_per_second"]["family"].items()]
    lines.append(f"GEMM roofline at the step's shapes: {result['roofline_gflops']} GFLOP/s")
    for size, cases in result["arithmetic"].items():
        lines += [f"  {size:<8} {name:<20} {row['gflops']:7.2f} GFLOP/s {row['roofline_fraction']:6.3f} of roofline"
                  for name, row in cases.items()]
    lines.append("ratios: " + ", ".join(f"{key} {value}" for key, value in result.items()
                                        if isinstance(value, float) and key != "seconds"))
    keys = (*(key for key, _ in FAMILY_RATIO_KEYS), "transformer_partial_vs_full")
    lines += [f"{key}: {result[key]}" for key in keys]
    lines.append(f"an evaluation to twice max_len costs {result['beyond_eval_cost']}x one on the training lengths "
                 "(goal: at most 2.5x)")
    lines += [f"  {name:<16} " + ", ".join(f"{k} {v}" for k, v in row.items())
              for name, row in result["scaling"].items()]
    lines.append(contracts.report(result["contracts"]))
    lines.append(f"total {result['seconds']} s")
    return "\n".join(lines)


def bench_command(quick: bool, as_json: bool, device: str = "cpu", threads: int = 1) -> None:
    result = run(QUICK if quick else FULL, device, threads)
    print(report(result))
    if as_json:
        print(json.dumps(result))
