"""The engine of a comparison: K models (arms x seeds) side by side on the same batches and coins, saved and
loaded like a single run."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from playground.core.config import TrainConfig
from playground.core.files import DamagedFile
from playground.core.tasks import CustomPairs
from playground.experiments.comparison import CompareConfig, CompareSnapshot
from playground.runs.progress import Progress, mismatch_is_damage, rows_up_to, run_checkpoint
from playground.training.checkpoints import (
    portable,
    save_checkpoint,
)
from playground.training.cost import parameter_count
from playground.training.metrics import Metric
from playground.training.run_folder import (
    CHECKPOINT_FILE,
    COMPARE_FILE,
    CONFIG_FILE,
    MODEL_COLUMN,
    RunKind,
    read_custom,
    read_json,
    read_metrics,
    write_json,
    write_metrics,
)
from playground.training.stacked import StackedTrainer
from playground.training.trainer import TrainedModel, build_model


class CompareEngine(Progress):
    """All arms x seeds in one `StackedTrainer`, with the history the Compare page draws."""

    kind = RunKind.COMPARE
    workers = 1  # one run: its parallel groups are threads that share the run's process

    @property
    def size(self) -> int:
        return self.trainer.size

    def __init__(self, config: CompareConfig, custom: CustomPairs | None = None, log_every: int = 5,
                 workers: int | None = None) -> None:
        self.config = config
        self.trainer = StackedTrainer(config.configs(), custom, workers=workers)
        self.custom = custom
        self.labels = [arm.label for arm in config.arms()]
        self.rows: list[list[dict[str, float]]] = [[] for _ in range(self.trainer.size)]
        self.exact_by_length: list[dict[int, float]] = [{} for _ in range(self.trainer.size)]
        self.seconds = 0.0
        self.log_every = log_every  # training loss is logged every few steps: the page re-sends every curve
        vocab = len(self.trainer.task.src_vocab), len(self.trainer.task.tgt_vocab)
        self.parameters = [parameter_count(model, *vocab) for model in self.trainer.configs[::config.seeds]]

    @classmethod
    def load(cls, run_dir: Path) -> CompareEngine:
        values = read_json(run_dir / COMPARE_FILE)
        if not isinstance(values, dict) or not isinstance(values.get("base"), dict):
            raise DamagedFile(f"{COMPARE_FILE} is damaged: it holds no base config")
        base = TrainConfig.from_dict(portable(values["base"]))
        config = CompareConfig.from_dict(values, base)
        checkpoint = run_checkpoint(run_dir)
        engine = cls(config, read_custom(run_dir, base))
        with mismatch_is_damage():
            engine.trainer.restore([saved.model.state_dict() for saved in checkpoint.models], checkpoint.step,
                                   checkpoint.resume)
        for row in rows_up_to(read_metrics(run_dir), checkpoint.step):
            model = int(row.pop(MODEL_COLUMN, -1))
            if not 0 <= model < engine.trainer.size:
                raise DamagedFile(f"metrics.csv names model {model}, which this comparison does not have")
            engine.rows[model].append(row)
        engine.seconds = max((rows[-1].get(Metric.SECONDS, 0.0) for rows in engine.rows if rows), default=0.0)
        engine.exact_by_length = [evaluation.exact_by_length for evaluation in engine.trainer.evaluate()]
        return engine

    def advance(self) -> None:
        started = time.perf_counter()
        if not self.rows[0]:
            self._evaluate({Metric.STEP: 0})
        result = self.trainer.train_step()
        self.seconds += time.perf_counter() - started
        step, base = result.step, self.config.base
        due = step % base.eval_every == 0 or step == base.steps
        if due or step % self.log_every == 0 or step == 1:
            extra = [{Metric.TRAIN_LOSS: loss, Metric.GAMMA: ratio}
                     for loss, ratio in zip(result.losses, result.ratios, strict=True)]
            if due:
                self._evaluate({Metric.STEP: step}, extra)
            else:
                for rows, values in zip(self.rows, extra, strict=True):
                    rows.append({Metric.STEP: step, Metric.SECONDS: self.seconds} | values)

    def _evaluate(self, row: dict[str, float], extra: list[dict[str, float]] | None = None) -> None:
        started = time.perf_counter()
        evaluations = self.trainer.evaluate()
        self.seconds += time.perf_counter() - started
        for k, evaluation in enumerate(evaluations):
            self.rows[k].append(row | {Metric.SECONDS: self.seconds} | (extra[k] if extra else {})
                                | evaluation.metrics)
            self.exact_by_length[k] = evaluation.exact_by_length

    def set_live(self, changes: Mapping[str, float]) -> None:
        raise ValueError("a comparison's settings are fixed while it trains")

    def extend(self, total_steps: int) -> None:
        self.config = self.config.with_base(self.config.base.replace(steps=total_steps))
        self.trainer.config = self.config.base

    def model_label(self, k: int) -> str:
        return self.config.model_labels()[k]

    def models(self) -> list[TrainedModel]:
        trainer = self.trainer
        built = []
        for k, config in enumerate(trainer.configs):
            model = build_model(config, len(trainer.task.src_vocab), len(trainer.task.tgt_vocab))
            model.load_state_dict(trainer.model_state(k))
            built.append(TrainedModel(self.model_label(k), model.to(trainer.device).eval(), config, trainer.task,
                                      trainer.data.val_pairs, trainer.step))
        return built

    def snapshot(self) -> CompareSnapshot:
        return CompareSnapshot(list(self.labels), self.config.seeds, [list(rows) for rows in self.rows],
                               [dict(d) for d in self.exact_by_length], self.step, self.total_steps, self.seconds,
                               self.config, self.parameters)

    def save(self, run_dir: Path) -> None:
        write_json(run_dir / CONFIG_FILE, self.config.base.as_dict())
        write_json(run_dir / COMPARE_FILE, self.config.as_dict())
        write_metrics(run_dir, ({MODEL_COLUMN: k} | row for k, rows in enumerate(self.rows) for row in rows),
                      (MODEL_COLUMN, *METRIC_COLUMNS_OF_COMPARE))
        trainer = self.trainer
        save_checkpoint(run_dir / CHECKPOINT_FILE,
                        [(self.model_label(k), config, trainer.model_state(k)) for k, config in
                         enumerate(trainer.configs)], trainer.task, trainer.step, self.custom, trainer.resume_state())

    def run_to_end(self) -> CompareSnapshot:
        """Headless without a run folder (tests, benchmarks): train every step."""
        while not self.finished:
            self.advance()
        return self.snapshot()


METRIC_COLUMNS_OF_COMPARE = tuple(metric for metric in Metric if metric != Metric.LR)
