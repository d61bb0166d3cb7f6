"""`decode`: one source through a trained model, greedy and by beam search, optionally after a what-if prefix of
output tokens the model is made to emit first (the Decode page's twin)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from playground.cli.common import EXIT_OK, BadInput, print_json
from playground.core.config import whole_number
from playground.core.tasks import TaskData
from playground.inspection.decoding import MAX_BEAM_WIDTH, beam_search, check_prefix, check_source, greedy
from playground.runs.background import RunError
from playground.runs.registry import RunRegistry
from playground.training.checkpoints import load_checkpoint
from playground.training.trainer import TrainedModel, build_task
from playground.training.upload_reader import read_checkpoint


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("decode", help="decode one source greedily and by beam search")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (training or comparison) or a checkpoint .pt")
    parser.add_argument("--source", required=True, help="the source as typed on the pages (e.g. abcde, or 37+5)")
    parser.add_argument("--prefix", default="", metavar="P",
                        help="what if: output tokens fed to the decoder first, written like a target (e.g. fa); "
                             "greedy decoding and beam search continue after them")
    parser.add_argument("--beam", type=beam_width, default=5, help=f"beam width, 1 to {MAX_BEAM_WIDTH} (default 5)")
    parser.add_argument("--length-norm", action="store_true",
                        help="rank finished beams by log-prob per token instead of the total")
    parser.add_argument("--model", type=int, default=0, metavar="K",
                        help="which model of a comparison run or a multi-model checkpoint (default 0)")
    parser.add_argument("--json", action="store_true",
                        help="end with one JSON line: source, prefix, greedy, beams (each output includes the prefix)")


def beam_width(text: str) -> int:
    if (number := whole_number(text)) is None or not 1 <= number <= MAX_BEAM_WIDTH:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a whole number from 1 to {MAX_BEAM_WIDTH}")
    return number


def load_models(path: Path, with_validation: bool = False) -> list[TrainedModel]:
    """Every model of a run folder (through the registry, as the app opens it) or of a checkpoint file; a
    checkpoint's validation examples are regenerated from its config when asked (as the pages do)."""
    if path.is_dir():
        try:
            return RunRegistry(path.parent).get(path.name).models()
        except (RunError, ValueError) as error:
            raise BadInput(f"{path} is not a readable run folder: {error}") from None
    loaded = load_checkpoint(path)
    models = []
    for saved in loaded.models:
        task = build_task(saved.config, loaded.custom)
        pairs = TaskData(task, saved.config.seed, saved.config.val_size).val_pairs if with_validation else []
        models.append(TrainedModel(saved.label, saved.model.eval(), saved.config, task, pairs, loaded.step))
    return models


def load_trained(path: Path, index: int) -> TrainedModel:
    """Model `index` of a run folder (through the registry, as the app opens it) or of a checkpoint file, which
    the uploads' reader reads in a process of its own, building that model only."""
    if path.is_dir():
        models = load_models(path)
        count, position = len(models), index
    else:
        loaded, count = read_checkpoint(path, index)
        models = [TrainedModel(saved.label, saved.model, saved.config, build_task(saved.config, loaded.custom), [],
                               loaded.step) for saved in loaded.models]
        position = 0 if models else -1
    if not 0 <= position < len(models):
        raise BadInput(f"--model {index} is not allowed: {path} holds {count} model(s), numbered 0 to {count - 1}")
    return models[position]


def run(args: argparse.Namespace) -> int:
    trained = load_trained(Path(args.run_dir), args.model)
    task = trained.task
    src = task.src_vocab.tokenize(args.source)
    try:
        notes = check_source(task, task.src_vocab, src)
    except ValueError as error:
        raise BadInput(str(error)) from None
    limit = task.decode_limit(len(src))
    prefix = task.tgt_vocab.tokenize(args.prefix)
    try:
        check_prefix(task.tgt_vocab, prefix, limit)
    except ValueError as error:
        raise BadInput(str(error)) from None
    model, vocabs = trained.model.eval(), (task.src_vocab, task.tgt_vocab)
    best = greedy(model, *vocabs, src, limit, prefix)
    search = beam_search(model, *vocabs, src, limit, args.beam, args.length_norm, prefix)
    for note in notes:
        print(f"note: {note}")
    name = f" ({trained.label})" if trained.label else ""
    print(f"model{name} at step {trained.step}; at most {limit} decoding steps"
          + (f", the first {len(prefix)} fed {task.tgt_vocab.join(prefix)}" if prefix else ""))
    print(f"greedy: {task.tgt_vocab.join(best.tokens)}  log-prob {best.logprob:.4f}")
    for rank, beam in enumerate(search.beams, 1):
        print(f"beam {rank}: {task.tgt_vocab.join(beam.tokens)}  log-prob {beam.logprob:.4f}"
              + (f"  per token {beam.score(True):.4f}" if args.length_norm else "")
              + ("" if beam.finished else "  (no <eos> within the limit)"))
    if args.json:
        print_json({"source": args.source, "prefix": prefix, "greedy": best.as_dict(),
                    "beams": [b.as_dict() for b in search.beams]})
    return EXIT_OK
