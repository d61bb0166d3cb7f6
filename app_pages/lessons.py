"""Lessons: a story, one button that starts a prepared comparison, questions, live charts and a computed reading."""

from __future__ import annotations

import streamlit as st

from playground.course import LESSONS, PREDICTIONS, Lesson, prediction_verdict, prepared, run_name, setup_facts
from playground.course.answers import answers
from playground.course.evidence import read_from
from playground.course.notebook import released, save_prediction, saved_prediction
from playground.experiments import CompareSnapshot
from playground.inspection import free_running_mistakes
from playground.plots import arm_figure, notes
from playground.reports import GAP, summary_rows
from playground.runs import BackgroundRun, RunPlan
from playground.runs.registry import registry
from playground.training import FINAL_STATUSES, RunKind, RunStatus
from playground.ui import (
    BOUND,
    MAX_EXAMPLES,
    chart,
    check_control,
    glossary_link,
    guarded_action,
    live_run_view,
    open_run,
    polls,
    script_download,
    seat_notice,
    session_owner,
    share_link,
    share_slot,
    show_refusal,
    visible_runs,
)

POLL_SECONDS = 2.0
REVEALED_KEY = "lesson_revealed"  # run ids whose answers this session revealed
PROBES_KEY = "lesson_probes"  # (run id, step) -> the models' recovery probes, for the lessons that read them
RUNS_KEY = "lesson_runs"  # lesson key -> run id, for this session (after a reload: the person's newest)

st.title("Lessons")
st.caption("Each lesson is a short experiment with a question behind it. Press its button, watch the charts while it "
           "trains (about a minute), answer the questions, then read what this run's own numbers say.")
share = share_slot("lessons")
glossary_link()
chosen = st.radio("Lesson", list(LESSONS), 0, format_func=lambda key: LESSONS[key].title, horizontal=True,
                  key="lesson", **BOUND,
                  help="Each lesson trains its own small models; its run stays here when you switch.")
lesson: Lesson = LESSONS[chosen]
st.session_state.setdefault(RUNS_KEY, {})


def current(lesson: Lesson) -> BackgroundRun[CompareSnapshot] | None:
    """This lesson's run: the one this session started, else the link's, else its newest run (a reload or a
    restarted server shows the last run and its reading, since the run is on disk). A lesson's run is what the
    server recorded at its start, never a name."""
    newest = next((summary.id for summary in visible_runs() if summary.kind == RunKind.COMPARE
                   and summary.lesson == lesson.key), None)
    for run_id in (st.session_state[RUNS_KEY].get(lesson.key), st.query_params.get("run"), newest):
        run = open_run(run_id, RunKind.COMPARE) if run_id else None
        if run is not None and run.lesson == lesson.key:
            st.session_state[RUNS_KEY][lesson.key] = run.id
            return run
    st.session_state.pop("run_problem", None)  # a link's run of another lesson is simply not this lesson's
    return None


@guarded_action("lesson")
def start(lesson: Lesson) -> None:
    config = prepared(lesson)
    run = registry().launch(run_name(lesson), RunPlan.compare(config), owner=session_owner(), lesson=lesson.key)
    st.session_state[RUNS_KEY][lesson.key] = run.id
    if (choice := st.session_state.get(prediction_key(lesson))) is not None:
        save_prediction(run.run_dir, choice)  # with the run: a reload, another tab or a shared link shows it


def prediction_key(lesson: Lesson) -> str:
    return f"prediction_{lesson.key}"


def remembered_prediction(lesson: Lesson, run: BackgroundRun[CompareSnapshot] | None) -> None:
    """Seed the prediction from the one stored with the lesson's run, else from the link, when the session has
    none (a reload, a page switch, a shared link)."""
    key, choices = prediction_key(lesson), len(PREDICTIONS[lesson.key].choices)
    if st.session_state.get(key) is not None:
        return
    stored = saved_prediction(run.run_dir, choices) if run is not None else None
    linked = st.query_params.get("prediction", "")
    st.session_state[key] = stored if stored is not None else (
        int(linked) if linked.isdigit() and int(linked) < choices else None)


def stopped_run(lesson: Lesson, run: BackgroundRun[CompareSnapshot] | None) -> tuple[str, int, int] | None:
    """(id, step, total) of this lesson's run to continue: the session's own if it was stopped before its end,
    else, when the session has none (after a restart, in a new tab), the newest such run it may see."""
    if run is not None:
        ended_early = run.status == RunStatus.STOPPED and run.step < run.total_steps
        return (run.id, run.step, run.total_steps) if ended_early else None
    return next(((summary.id, summary.step, summary.total_steps) for summary in visible_runs()
                 if summary.kind == RunKind.COMPARE and summary.lesson == lesson.key
                 and summary.status == RunStatus.STOPPED and summary.step < summary.total_steps), None)


@guarded_action("lesson")
def continue_run(lesson: Lesson, run_id: str) -> None:
    """Train a stopped lesson run on to its own end, exactly where it was saved."""
    run = registry().get(run_id)
    check_control(run.id)
    run.train_on(run.total_steps)
    st.session_state[RUNS_KEY][lesson.key] = run_id


@guarded_action("lesson")
def stop(lesson: Lesson) -> None:
    if (run := current(lesson)) is not None:
        check_control(run.id)
        run.stop(wait=3.0)


run = current(lesson)
busy = run is not None and (run.active or run.status == RunStatus.QUEUED)  # one run of a lesson at a time
if run is None:
    st.query_params.pop("run", None)
elif st.query_params.get("run") != run.id:
    st.query_params["run"] = run.id
titles = {key: LESSONS[key].title for key in LESSONS}
remembered_prediction(lesson, run)
if (chosen_prediction := st.session_state.get(prediction_key(lesson))) is not None:
    st.query_params["prediction"] = str(chosen_prediction)
else:
    st.query_params.pop("prediction", None)
share_link(share, {"lesson": titles[chosen]}, {"lesson": titles[next(iter(LESSONS))]},
           ({"run": run.id} if run is not None else {})
           | ({"prediction": str(chosen_prediction)} if chosen_prediction is not None else {}),
           {"lesson": ", ".join(titles.values())})
st.subheader(lesson.title)
st.markdown(lesson.story)
config = prepared(lesson)
st.caption(setup_facts(config))
prediction = PREDICTIONS[lesson.key]
predicted = st.radio(f"**Predict first:** {prediction.question}", range(len(prediction.choices)), index=None,
                     format_func=prediction.choices.__getitem__, key=prediction_key(lesson),
                     help="Commit to an answer before you watch: the reading compares it with what happened. "
                          "Predicting first makes a demonstration teach more.")
seated = seat_notice("lesson_login")
buttons = st.container(horizontal=True)
buttons.button("Start this experiment" if run is None else "Run it again", key="lesson_start", type="primary",
               on_click=start, args=(lesson,), disabled=busy or predicted is None or not seated, width="content",
               help=f"Trains {len(config.configs())} models for {config.base.steps} steps (hidden size "
                    f"{config.base.hidden_dim}, sequences of {config.base.min_len} to {config.base.max_len} symbols)")
buttons.button("Stop", key="lesson_stop", on_click=stop, args=(lesson,), disabled=not busy, icon=":material/stop:",
               width="content", help="End this lesson's run (or leave the queue); its charts stay")
if (stopped := stopped_run(lesson, run)) is not None:
    stopped_id, stopped_step, stopped_total = stopped
    buttons.button("Continue where it stopped", key="lesson_continue", on_click=continue_run,
                   args=(lesson, stopped_id), icon=":material/fast_forward:", width="content",
                   help=f"The run {stopped_id} of this lesson stopped at step {stopped_step:,} of {stopped_total:,}: "
                        "train it on to its end exactly where it was saved (the same numbers as a run never stopped)")
show_refusal("lesson")
st.markdown("**Questions to answer from the charts**\n" + "\n".join(f"1. {q}" for q in lesson.questions))


def where_to_look(run: BackgroundRun[CompareSnapshot]) -> None:
    """Links to Decode and Hidden states on this lesson's model with the widest gap, at an example it gets wrong
    free-running: the best picture of exposure bias the app has."""
    table = summary_rows(run.snapshot())
    if not table:
        return
    arm = max(range(len(table)), key=lambda index: table[index][GAP])
    first_seed = arm * table[arm]["seeds"]  # models are arm-major: the arm's first seed
    model = run.models()[first_seed]
    mistakes = free_running_mistakes(model.model, model.task, model.val_pairs[:MAX_EXAMPLES])
    params = {"run": run.id, "model": str(first_seed), "example": str(mistakes.index(True) if any(mistakes) else 0)}
    st.markdown(f"**Where to look**: {table[arm]['label']} has the widest gap; "
                + ("here is an example it gets wrong on its own." if any(mistakes) else "it gets every example right."))
    links = st.container(horizontal=True)
    with links:
        st.page_link("app_pages/decode.py", label="Step through it on Decode", icon=":material/footprint:",
                     query_params=params)
        st.page_link("app_pages/hidden_states.py", label="Its hidden states", icon=":material/grid_on:",
                     query_params=params)


def hidden(lesson: Lesson, run_id: str) -> bool:
    """In a class, a lesson's answers wait until the student reveals them or the teacher releases them."""
    return (registry().classroom is not None and run_id not in st.session_state.get(REVEALED_KEY, set())
            and lesson.key not in released(registry().runs_dir))


def reveal(run_id: str) -> None:
    st.session_state.setdefault(REVEALED_KEY, set()).add(run_id)


def evidence(run: BackgroundRun[CompareSnapshot], snapshot: CompareSnapshot) -> CompareSnapshot:
    """What the finished run's reading reads (with each model's probe where the lesson needs it), computed once
    per run and step."""
    cache = st.session_state.setdefault(PROBES_KEY, {})
    if (run.id, snapshot.step) not in cache:
        cache.clear()
        cache[run.id, snapshot.step] = read_from(lesson, snapshot, run.models)
    return cache[run.id, snapshot.step]


def show(snapshot: CompareSnapshot, status: str) -> None:
    st.progress(min(snapshot.step / snapshot.total_steps, 1.0),
                text=f"{status}: step {snapshot.step} of {snapshot.total_steps} · {snapshot.seconds:.0f} s")
    columns = st.columns(2)
    for index, name in enumerate(lesson.charts):
        with columns[index % 2]:
            chart(st, arm_figure(snapshot, name), f"lesson_chart_{index}", notes.ARM_CHARTS[name])
    if status in FINAL_STATUSES:
        st.subheader("What this run shows")
        if hidden(lesson, run.id):
            st.button("Reveal the answers", key="lesson_reveal", on_click=reveal, args=(run.id,), type="primary",
                      help="Answer the questions from the charts first; then compare with what the run's own "
                           "numbers say (or wait for your teacher to release the answers)")
            return
        snapshot = evidence(run, snapshot)
        reading = lesson.read(snapshot)
        if predicted is not None:
            st.info(prediction_verdict(lesson.key, predicted, snapshot))
        (st.success if reading.appeared else st.warning)(reading.text)
        st.markdown("**The questions, answered from this run**\n" + "\n".join(
            f"1. *{question}* {answer}" for question, answer in zip(lesson.questions, answers(lesson.key, snapshot),
                                                                    strict=True)))
        where_to_look(run)
        metrics, script = st.columns(2)
        metrics.download_button("Metrics (CSV)", lambda: registry().metrics_file(run.id), f"lesson-{lesson.key}.csv",
                                "text/csv", key="lesson_metrics", icon=":material/download:",
                                help="Every model's metrics at every logged step, to plot or check elsewhere")
        script_download(script, run.id, "lesson_script")


live_run_view(run, polls(run), POLL_SECONDS, None, "run", show)
