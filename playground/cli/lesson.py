"""`lesson`: the Lessons page headless. It trains a lesson's comparison through the same registry (a lesson run the
page lists and reads), then prints its reading and the answers to its questions, with the facts each was decided
from; `--prediction` is stored with the run as the page stores a student's."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from playground.cli.common import EXIT_CODES, EXIT_OK, BadInput, add_runs_dir_option, follow, print_json, runs_dir
from playground.course import LESSONS, PREDICTIONS, prediction_verdict, prepared, run_name
from playground.course.answers import answered
from playground.course.evidence import read_from
from playground.course.notebook import save_prediction
from playground.reports.comparison_table import format_table, summary_rows
from playground.runs.protocol import RunPlan
from playground.runs.registry import RunRegistry


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("lesson", help="run a lesson and print its reading and answers, as the Lessons "
                                                "page does")
    parser.add_argument("lesson", nargs="?", default="", metavar="KEY",
                        help=f"the lesson: {', '.join(LESSONS)} (none: list them)")
    parser.add_argument("--steps", type=int, default=0, help="train this many steps instead of the lesson's own")
    parser.add_argument("--prediction", type=int, default=None, metavar="N",
                        help="your prediction first: the number of its choice, from 0 (see the list)")
    add_runs_dir_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument("--json", action="store_true",
                        help="end with one JSON line: the run, its reading (appeared, why, text), each question's "
                             "answer with its facts, the prediction's verdict, and a row per arm")


def run(args: argparse.Namespace) -> int:
    if not args.lesson:
        for key, lesson in LESSONS.items():
            print(f"{key:<20}  {lesson.title}")
            for number, choice in enumerate(PREDICTIONS[key].choices):
                print(f"{'':<22}prediction {number}: {choice}")
        return EXIT_OK
    if args.lesson not in LESSONS:
        raise BadInput(f"no lesson {args.lesson!r}: use one of {', '.join(LESSONS)}")
    lesson, prediction = LESSONS[args.lesson], PREDICTIONS[args.lesson]
    if args.prediction is not None and not 0 <= args.prediction < len(prediction.choices):
        raise BadInput(f"--prediction {args.prediction} is not allowed: use 0 to {len(prediction.choices) - 1}")
    if args.steps < 0:
        raise BadInput(f"--steps {args.steps} is not allowed: use a positive whole number (0: the lesson's own)")
    lesson_run = RunRegistry(runs_dir(args)).launch(run_name(lesson), RunPlan.compare(prepared(lesson, args.steps)),
                                                    lesson=lesson.key)
    if args.prediction is not None:
        save_prediction(Path(lesson_run.run_dir), args.prediction)
    status = follow(lesson_run, args.quiet)
    snapshot = read_from(lesson, lesson_run.snapshot(), lesson_run.models)
    reading = lesson.read(snapshot)
    answers = answered(lesson.key, snapshot)
    verdict = prediction_verdict(lesson.key, args.prediction, snapshot) if args.prediction is not None else ""
    print(format_table(summary_rows(snapshot)))
    print(reading.text)
    for number, (question, answer) in enumerate(zip(lesson.questions, answers, strict=True), 1):
        print(f"{number}. {question} {answer.text}")
    if verdict:
        print(verdict)
    print(f"{status}; run folder: {lesson_run.run_dir}")
    if args.json:
        print_json({"status": str(status), "message": lesson_run.message, "id": lesson_run.id, "lesson": lesson.key,
                    "steps": snapshot.step, "total_steps": snapshot.total_steps, "run_dir": str(lesson_run.run_dir),
                    "reading": {"appeared": reading.appeared, "why": reading.why, "text": reading.text},
                    "answers": [{"question": question, "text": answer.text, "facts": answer.facts}
                                for question, answer in zip(lesson.questions, answers, strict=True)],
                    "prediction": None if args.prediction is None else {
                        "chosen": args.prediction, "happened": prediction.outcome(snapshot), "verdict": verdict},
                    "rows": summary_rows(snapshot)})
    return EXIT_CODES.get(status, EXIT_OK)
