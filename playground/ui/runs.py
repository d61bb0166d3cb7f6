"""What the pages show of runs: the run a session or a link attaches, the live view, the shared chart helper,
the state preview and the runs panel (open, rename, delete, download)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from playground.experiments.comparison import arm_of
from playground.inspection.decoding import position_errors
from playground.plots import notes
from playground.plots.common import chart_config, file_name
from playground.plots.decoding_figures import position_errors_figure
from playground.plots.state_figures import alignment_heatmap, state_heatmap
from playground.runs.background import BackgroundRun, RunError
from playground.runs.registry import RunSummary, registry
from playground.runs.train_engine import TrainingSnapshot
from playground.training.run_folder import FINAL_STATUSES, RunKind, RunStatus
from playground.ui.actions import guarded_action, show_refusal
from playground.ui.people import check_control, control_link, is_teacher, may_control, session_owner
from playground.ui.text import plain

LINK_PAGES = {RunKind.TRAIN: "", RunKind.COMPARE: "compare"}  # the page (URL path) that shows a run of a kind


def attached_run(kind: RunKind, session_key: str, url_key: str,
                 show_settings: Callable[[BackgroundRun[Any]], None]) -> BackgroundRun[Any] | None:
    """The run a page shows: the session's, else the URL's (which survives a reload); forgotten if it is gone.

    The first time a session attaches this page's run (a reload, an opened link) it calls `show_settings` so the
    widgets show the run's own settings; call this before the widgets are drawn.
    """
    fresh_session = not st.session_state.get(f"attached_{url_key}")
    st.session_state[f"attached_{url_key}"] = True
    run_id = st.session_state.get(session_key, st.query_params.get(url_key))
    if not run_id:
        return None
    run = open_run(run_id, kind)
    if run is None:  # a deleted or damaged run, or a foreign id in the URL
        st.session_state.pop(session_key, None)
        st.query_params.pop(url_key, None)
        return None
    st.session_state[session_key] = st.query_params[url_key] = run_id
    if fresh_session:
        show_settings(run)
    return run


def visible_runs() -> list[RunSummary]:
    """The runs this session may see: all of them, or in shared mode its own and those opened by a link (the
    teacher: all)."""
    return registry().list(session_owner(), frozenset(st.session_state.get("opened_runs", ())), everyone=is_teacher())


def open_run(run_id: str, kind: RunKind) -> BackgroundRun[Any] | None:
    """A run of this kind by id, or None (the reason is kept for `run_problem`); opening grants this session
    sight of it (a link is how a run is shared)."""
    st.session_state.setdefault("opened_runs", set()).add(run_id)
    try:
        run = registry().get(run_id)
    except (RunError, ValueError) as error:  # ValueError: a damaged run (config, checkpoint, task)
        st.session_state.run_problem = plain(f"Cannot open run {run_id}: {error}")
        return None
    if run.kind != kind:
        st.session_state.run_problem = plain(f"Run {run_id} is a {run.kind} run, not a {kind} run.")
        return None
    return run


SCRIPT_HELP = ("One self-contained .py file (torch and the standard library only) that trains this experiment with "
               "the same seeds and prints the same validation figures; or: python -m playground export RUN --script")


def script_download(container: Any, run_id: str, widget_key: str, condition: int | None = None) -> None:
    """The "PyTorch script" download of a run (of a study: one condition), written only when clicked."""
    name = f"{run_id}-condition-{condition}.py" if condition is not None else f"{run_id}.py"
    container.download_button("PyTorch script", lambda: registry().script_file(run_id, condition), name,
                              "text/x-python", key=widget_key, icon=":material/code:", help=SCRIPT_HELP)


CHART_FORMATS = {"png": "PNG (picture)", "svg": "SVG (vector, for slides and papers)"}
LOOKING_AT = "What am I looking at?"


def chart(container: Any, figure: Any, key: str, note: str, name: str | None = None) -> None:
    """Every page's one way to draw a plotly figure: the shared toolbar and download settings, full width, and
    under it its "What am I looking at?" (`note`, from `plots.notes`).

    The toolbar's camera saves the chart as PNG or SVG (the sidebar's "Chart downloads" choice) under a name
    taken from the title, so a saved file says what it shows.
    """
    config = chart_config(name or file_name(figure.layout.title.text or key))
    config["toImageButtonOptions"]["format"] = st.session_state.get("chart_format", "png")
    container.plotly_chart(figure, key=key, width="stretch", config=config)
    explained(container, note)


def explained(container: Any, note: str) -> None:
    """A figure's "What am I looking at?": its axes, colours, and what a good and a bad picture look like."""
    container.popover(LOOKING_AT, icon=":material/help:").markdown(note)


def live_run_view(run: BackgroundRun[Any] | None, polling: bool, seconds: float, waiting: str | None, noun: str,
                  show: Callable[[Any, str], None]) -> None:
    """A run's view, redrawn every `seconds` while it trains (`show(snapshot, status)`), with one warning when it
    ended with a message, and a rerun then so the fragment re-registers without a timer. Before there is a run it
    says `waiting` (nothing when None)."""
    @st.fragment(run_every=seconds if polling else None)
    def live() -> None:
        if run is None:
            if waiting:
                st.info(waiting)
            return
        queue_place(run)
        show(run.snapshot(), run.status)
        if run.status in FINAL_STATUSES:
            if run.message:
                st.warning(f"The {noun} ended ({run.status}): {run.message}")
            if polling:
                st.rerun()

    live()


def queue_place(run: BackgroundRun[Any]) -> None:
    """A waiting run's place in the queue; asking also keeps the person's place (they are still here)."""
    session_owner()
    place, waiting = registry().queue_position(run)
    if place:
        st.info(f"Waiting for a free slot: place {place} of {waiting} in the queue. Training starts by itself.")


def polls(run: BackgroundRun[Any] | None) -> bool:
    """Whether a page redraws a run on a timer: while it trains or waits in the queue."""
    return run is not None and run.status in (RunStatus.RUNNING, RunStatus.QUEUED)


def compounding_errors(container: Any, run: BackgroundRun[Any], key: str) -> None:
    """Where exposure bias compounds: error by output position, teacher-forced against free-running, for every
    model of an ended run, on its validation set; computed once per run and step (a few forward passes)."""
    cached = st.session_state.get(f"{key}_errors")
    if cached is None or cached[0] != (run.id, run.step):
        errors = [(arm_of(model.label, model.config),
                   position_errors(model.model, model.task, model.val_pairs, model.config.eos))
                  for model in run.models() if model.val_pairs]
        cached = st.session_state[f"{key}_errors"] = ((run.id, run.step), errors)
    if cached[1]:
        chart(container, position_errors_figure(cached[1]), key, notes.POSITIONS)


def chart_format_picker() -> None:
    """The format the charts' camera button saves (plotly offers one per button)."""
    st.sidebar.radio("Chart downloads (camera button)", list(CHART_FORMATS), format_func=CHART_FORMATS.get,
                     key="chart_format", horizontal=True,
                     help="What the camera button in a chart's toolbar saves: a PNG picture or an SVG drawing "
                          "that scales without blur; the file is named after the chart")


def run_label(run: BackgroundRun[Any]) -> str:
    """The run's name (or id) as Markdown that shows it as typed."""
    return plain(run.name if run.name != run.id else run.id)


def state_preview(snapshot: TrainingSnapshot) -> None:
    """Encoder and decoder h_t (top layer) on one fixed validation example."""
    capture = snapshot.preview
    if capture is None:
        return
    st.markdown(f"**Hidden states h_t** of the top layer on one validation example, refreshed at each evaluation "
                f"(step {snapshot.rows[-1]['step']:.0f} or earlier). The **Hidden states** page shows more.")
    left, right = st.columns(2)
    chart(left, state_heatmap(capture.encoder[-1].h, capture.encoder_tokens, "Encoder h_t (reads the source)",
                              height=300, value_name="h"), "preview_encoder", notes.STATES)
    labels = [f"{fed}→{out}" for fed, out in zip(capture.decoder_inputs, capture.predicted, strict=True)]
    chart(right, state_heatmap(capture.decoder[-1].h, labels, "Decoder h_t (input → prediction)",
                               height=300, value_name="h"), "preview_decoder", notes.STATES)
    if capture.attention is not None:  # sharpens from flat rows to the task's path as the model learns
        chart(st, alignment_heatmap(capture.attention, capture.src_tokens, labels,
                                    "Attention α on the same example (free-running)", height=300),
              "preview_alignment", notes.ALIGNMENT)


def runs_panel(kind: RunKind, session_key: str, url_key: str, show_settings: Callable[[BackgroundRun[Any]], None],
               live_metrics: Callable[[], str | bytes], current: str | None) -> None:
    """The runs of one kind: open, rename, delete, download (the run on screen downloads its live rows)."""
    runs = registry()
    panel = f"runs_{kind}"

    def open_listed(run_id: str) -> None:
        if (opened := open_run(run_id, kind)) is None:
            return
        st.session_state[session_key] = run_id
        show_settings(opened)

    @guarded_action(panel)
    def rename(run_id: str) -> None:
        check_control(run_id)
        runs.rename(run_id, st.session_state.get(f"new_name_{kind}", ""))

    @guarded_action(panel)
    def delete(run_id: str) -> None:
        check_control(run_id)
        runs.delete(run_id)
        if st.session_state.get(session_key) == run_id:
            st.session_state.pop(session_key)
            st.query_params.pop(url_key, None)

    with st.expander("Runs: open, rename, delete, download"):
        if problem := st.session_state.pop("run_problem", None):
            st.error(problem)
        labels = {summary.id: f"{summary.name} ({summary.status}, step {summary.step:,} of "
                              f"{summary.total_steps:,}) — {summary.id}"
                  for summary in visible_runs() if summary.kind == kind}
        if not labels:
            st.caption("No runs yet.")
            return
        chosen = st.selectbox("Run", list(labels), format_func=labels.get, key=f"manage_{kind}",
                              help="A run of this kind, newest first: its name, status, steps and folder id")
        controls = may_control(chosen)
        columns = st.columns(4)
        columns[0].button("Open", key=f"open_{kind}", on_click=open_listed, args=(chosen,),
                      help="Show this run on the page, with its settings in the sidebar")
        columns[1].text_input("New name", key=f"new_name_{kind}", label_visibility="collapsed",
                              placeholder="new name", disabled=not controls,
                              help="A new name for the chosen run (its folder id stays the same)")
        columns[2].button("Rename", key=f"rename_{kind}", disabled=not controls, on_click=rename, args=(chosen,),
                          help="Give the chosen run the name typed on the left (its owner only)")
        columns[3].button("Delete", key=f"delete_{kind}", disabled=not controls, on_click=delete, args=(chosen,),
                          help="Stop the chosen run if it trains and delete its folder: this cannot be undone "
                               "(its owner only)")
        show_refusal(panel)
        if not controls:
            st.caption("You opened this run by its link: you can look at it and train the experiment yourself "
                       "(Reset, then Start); its owner controls it.")
        elif link := control_link(LINK_PAGES.get(kind, ""), url_key, chosen):
            st.popover("Control link", icon=":material/key:").code(link, language=None, wrap_lines=True)
        downloads = st.columns(3)  # the files are read only when a download is clicked
        downloads[0].download_button("Metrics (CSV)", lambda: live_metrics() if chosen == current
                                     else runs.metrics_file(chosen), f"{chosen}-metrics.csv", "text/csv",
                                     key=f"download_metrics_{kind}")
        downloads[1].download_button("Checkpoint (.pt)", lambda: runs.checkpoint_file(chosen), f"{chosen}.pt",
                                     "application/octet-stream", key=f"download_checkpoint_{kind}")
        script_download(downloads[2], chosen, f"download_script_{kind}")
