"""Class (the teacher's page, PLAYGROUND_TEACHER_TOKEN): every run with its owner, status and cost, Stop for any,
runs whose owner is gone handed back by their control link, and a lesson's class runs overlaid as seeds."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from playground.course import LESSONS, class_snapshot, run_name
from playground.plots import arm_figure, notes
from playground.runs import RunError, RunSummary
from playground.runs.registry import registry
from playground.training import RunKind, RunStatus, gigabytes
from playground.ui import LINK_PAGES, chart, control_link, is_teacher

WAITING_OR_TRAINING = (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.QUEUED)

st.title("Class")
if not is_teacher():
    st.error("This page is the teacher's: open the app once with ?teacher=TOKEN (PLAYGROUND_TEACHER_TOKEN).")
    st.stop()
runs = registry()
everything = runs.list(everyone=True)


def person(summary: RunSummary) -> str:
    """An owner as the teacher reads it: a short name of the secret identity, and whether they are here."""
    if not summary.owner:
        return "nobody (CLI)"
    return f"person {summary.owner[:6]}" + ("" if runs.present(summary.owner) else " (gone)")


def cost(summary: RunSummary) -> str:
    """The memory a run holds while it trains (admission control's estimate), for runs training or waiting."""
    if summary.status not in WAITING_OR_TRAINING:
        return ""
    try:
        return gigabytes(runs.get(summary.id).peak_memory_bytes)
    except (RunError, ValueError):
        return ""


st.caption(f"{len(everything)} runs on this server; at most {runs.max_active} train at once, "
           f"{runs.max_per_session} per person, idle runs release their slot after {runs.idle_seconds / 60:g} min.")
st.dataframe(pd.DataFrame([{"name": s.name, "owner": person(s), "kind": str(s.kind), "status": str(s.status),
                            "step": s.step, "of": s.total_steps, "memory while training": cost(s), "id": s.id}
                           for s in everything]), hide_index=True, width="stretch")

busy = [summary for summary in everything if summary.status in WAITING_OR_TRAINING]
if busy:
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    chosen = left.selectbox("Training or waiting", [s.id for s in busy], key="class_stop_choice",
                            format_func=lambda run_id: next(f"{s.name} ({s.status}, {person(s)})"
                                                            for s in busy if s.id == run_id),
                            help="Every run of the class that trains, is paused or waits in the queue")
    if right.button("Stop", key="class_stop", icon=":material/stop:",
                    help="End this run (or take it out of the queue); it is saved and its owner can continue it"):
        runs.get(chosen).stop(wait=3.0)
        st.rerun()

gone = [summary for summary in everything if summary.owner and not runs.present(summary.owner)
        and summary.kind in LINK_PAGES]
st.subheader("Runs whose owner is gone")
st.caption("Their owner has not opened a page since this server started (a new browser, cleared cookies). "
           "Hand a run back by giving its owner its control link: whoever opens it controls the run.")
if gone:
    chosen = st.selectbox("Run", [s.id for s in gone], key="class_gone_choice",
                          format_func=lambda run_id: next(f"{s.name} ({s.status}, {person(s)}) — {s.id}"
                                                          for s in gone if s.id == run_id),
                          help="A run whose owner has not come back: its control link below hands it back")
    kind = next(s.kind for s in gone if s.id == chosen)
    if link := control_link(LINK_PAGES[kind], "run" if kind == RunKind.TRAIN else "compare", chosen):
        st.code(link, language=None, wrap_lines=True)
else:
    st.caption("None.")

st.subheader("A lesson, the whole class")
lesson = LESSONS[st.selectbox("Lesson", list(LESSONS), format_func=lambda key: LESSONS[key].title,
                              key="class_lesson", help="Every student's run of this lesson, drawn together")]
snapshots = []
for summary in everything:
    if summary.kind == RunKind.COMPARE and summary.name == run_name(lesson):
        try:
            snapshots.append(runs.get(summary.id).snapshot())
        except (RunError, ValueError):
            continue
if (combined := class_snapshot(snapshots)) is None:
    st.caption("No student has run this lesson yet.")
else:
    st.caption(f"{len(snapshots)} runs of the class; each student's run is one seed, so the band (± one standard "
               "deviation) is the lesson's seed noise. Curves reach as far as every run has come.")
    columns = st.columns(2)
    for index, name in enumerate(lesson.charts):
        chart(columns[index % 2], arm_figure(combined, name), f"class_chart_{index}", notes.ARM_CHARTS[name])
