"""What a student and a teacher leave beside a lesson's runs: the prediction made before a run, stored in that
run's folder so a reload or a shared link shows it, and the lessons whose answers the teacher has released to the
class, in one small file beside the runs."""

from __future__ import annotations

from pathlib import Path

from playground.training.run_folder import read_json, write_json

PREDICTION_FILE = "prediction.json"
RELEASES_FILE = "released_answers.json"


def save_prediction(run_dir: Path, choice: int) -> None:
    write_json(run_dir / PREDICTION_FILE, {"choice": choice})


def saved_prediction(run_dir: Path, choices: int) -> int | None:
    """The prediction stored with a run, if it is one of the `choices` (a damaged or foreign file reads as none)."""
    try:
        stored = read_json(run_dir / PREDICTION_FILE)
    except (OSError, ValueError):
        return None
    choice = stored.get("choice") if isinstance(stored, dict) else None
    return choice if isinstance(choice, int) and not isinstance(choice, bool) and 0 <= choice < choices else None


def released(runs_dir: Path) -> set[str]:
    """The lessons whose answers every student sees without revealing them."""
    try:
        stored = read_json(runs_dir / RELEASES_FILE)
    except (OSError, ValueError):
        return set()
    return {key for key in stored if isinstance(key, str)} if isinstance(stored, list) else set()


def set_released(runs_dir: Path, lesson_key: str, release: bool) -> None:
    keys = released(runs_dir) | {lesson_key} if release else released(runs_dir) - {lesson_key}
    write_json(runs_dir / RELEASES_FILE, sorted(keys))
