"""Class (the teacher's page, PLAYGROUND_TEACHER_TOKEN): the seats (issue a link, revoke, a new link), every run
with its seat, status and cost, Stop for any, runs whose seat is gone handed back by their control link, and a
lesson's class runs overlaid as seeds."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from playground.course import LESSONS, class_snapshot
from playground.plots import arm_figure, notes
from playground.runs import Classroom, RunError, RunSummary, Seat
from playground.runs.registry import registry
from playground.training import RunKind, RunStatus, gigabytes
from playground.ui import LINK_PAGES, chart, control_link, guarded_action, is_teacher, seat_link, show_refusal

WAITING_OR_TRAINING = (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.QUEUED)

st.title("Class")
if not is_teacher():
    st.error("This page is the teacher's: open the app once with ?teacher=TOKEN (PLAYGROUND_TEACHER_TOKEN).")
    st.stop()
runs = registry()
if runs.classroom is None:
    st.error("This page serves a class: start the server with PLAYGROUND_SHARED=1.")
    st.stop()
classroom: Classroom = runs.classroom
everything = runs.list(everyone=True)


def person(summary: RunSummary) -> str:
    """An owner as the teacher reads it: the seat's name, and whether it is here."""
    if not summary.owner:
        return "nobody (CLI)"
    name = classroom.book.name(summary.owner) or f"seat {summary.owner}"
    return name + ("" if classroom.presence.here(summary.owner) else " (gone)")


def cost(summary: RunSummary) -> str:
    """The memory a run holds while it trains (admission control's estimate), for runs training or waiting."""
    if summary.status not in WAITING_OR_TRAINING:
        return ""
    try:
        return gigabytes(runs.get(summary.id).peak_memory_bytes)
    except (RunError, ValueError):
        return ""


@guarded_action("seat")
def issue() -> None:
    seat, key = classroom.book.issue(st.session_state.class_seat_name)
    st.session_state.class_seat_name = ""
    st.session_state.issued_link = (seat.name, seat_link(key))


@guarded_action("seat")
def revoke(seat: Seat) -> None:
    """The seat's link (or login) grants nothing from now on, and its runs stop (saved: a new link continues
    them)."""
    classroom.book.revoke(seat.id)
    for summary in everything:
        if summary.owner == seat.id and summary.status in WAITING_OR_TRAINING:
            runs.get(summary.id).stop(wait=3.0)


@guarded_action("seat")
def new_link(seat: Seat) -> None:
    st.session_state.issued_link = (seat.name, seat_link(classroom.book.new_key(seat.id)))


st.subheader("Seats")
st.caption("Training on this server needs a seat: issue one per student and hand them its link (a login gives one "
           "too, where the secrets configure [auth]). Whoever opens a link holds the seat in that browser; revoke it "
           "or make a new link if a link goes astray. Without a seat a visitor can open shared links and read.")
if classroom.book.problem:
    st.warning(classroom.book.problem)
left, right = st.columns([4, 1], vertical_alignment="bottom")
left.text_input("Student's name", key="class_seat_name", max_chars=60, placeholder="e.g. Ada",
                help="How this page names the seat and its runs (students do not see it)")
right.button("Issue a seat", key="class_issue", on_click=issue, icon=":material/event_seat:",
             help="A new seat and its link, shown once here")
show_refusal("seat")
if issued := st.session_state.pop("issued_link", None):
    st.caption("The link for this seat, shown once (this page keeps no copy): hand it to its student.")
    st.code(issued[1], language=None, wrap_lines=True)
seats = classroom.book.all()
owned = {seat.id: [summary for summary in everything if summary.owner == seat.id] for seat in seats}
st.dataframe(pd.DataFrame([{"seat": seat.name, "by": seat.how, "revoked": seat.revoked,
                            "here": classroom.presence.here(seat.id),
                            "runs": ", ".join(f"{s.name} ({s.status})" for s in owned[seat.id]), "id": seat.id}
                           for seat in seats], columns=["seat", "by", "revoked", "here", "runs", "id"]),
             hide_index=True, width="stretch")
if seats:
    chosen_seat = next(seat for seat in seats if seat.id == st.selectbox(
        "Seat", [seat.id for seat in seats], key="class_seat_choice",
        format_func=lambda seat_id: next(f"{s.name} ({s.how}{', revoked' if s.revoked else ''})"
                                         for s in seats if s.id == seat_id),
        help="A seat to revoke or to give a new link"))
    actions = st.container(horizontal=True)
    actions.button("Revoke", key="class_revoke", on_click=revoke, args=(chosen_seat,), icon=":material/block:",
                   disabled=chosen_seat.revoked, width="content",
                   help="Its link (or login) grants nothing from now on; its runs stop and are saved")
    actions.button("New link", key="class_new_link", on_click=new_link, args=(chosen_seat,), width="content",
                   icon=":material/link:", disabled=chosen_seat.how == "login",
                   help="A fresh link for this seat (the old one stops working; a revoked seat is given back)")

st.subheader("Runs")
st.caption(f"{len(everything)} runs on this server; at most {runs.max_active} workers train at once, "
           f"{classroom.per_seat} per seat, {classroom.max_queued} wait in the queue; the runs of a seat with no "
           f"page open stop after {classroom.idle_seconds / 60:g} min.")
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

gone = [summary for summary in everything if summary.owner and not classroom.presence.here(summary.owner)
        and summary.kind in LINK_PAGES]
st.subheader("Runs whose seat is gone")
st.caption("Their seat has not opened a page since this server started (revoked, or its student lost the link). "
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
    if summary.kind == RunKind.COMPARE and summary.lesson == lesson.key:  # recorded at its start, not a name
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
