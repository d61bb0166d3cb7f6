"""The probe ("does it recover?") and the drift of decoder states on the pages: computed once per model state (a
probe costs a few validation passes), drawn with one colour per arm, each chart with its note."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import streamlit as st

from playground.experiments.comparison import arm_of
from playground.inspection.drift import Drift
from playground.inspection.exposure import Exposure, by_arm, examine
from playground.plots import notes
from playground.plots.probe_figures import drift_figure, drift_plane_figure, prefix_error_figure, recovery_figure
from playground.reports.probe_reading import recovery_headline
from playground.training.trainer import TrainedModel
from playground.ui.inspection import Source
from playground.ui.runs import chart
from playground.ui.text import plain


def exposures(key: str, identity: Hashable | None, models: Callable[[], list[TrainedModel]],
              drift: bool) -> list[Exposure]:
    """The models' probes (and drifts), kept under `key` while `identity` (a run and its step) stays the same;
    None: a model that is still training, computed afresh."""
    cached = st.session_state.get(key)
    if identity is None or cached is None or cached[0] != (identity, drift):
        with st.spinner("Probing the model: every position of the validation examples, with one wrong token"):
            cached = ((identity, drift), examine(models(), drift=drift))
        if identity is not None:
            st.session_state[key] = cached
    return cached[1]


def source_models(source: Source, every_arm: bool) -> tuple[Hashable | None, Callable[[], list[TrainedModel]]]:
    """An inspection page's model (or every model of its comparison) as the probe reads them, and what identifies
    them while they do not change (None for a run that trains): the copy of the weights a run hands out, which it
    replaces when it trains on."""
    identity = None if source.live else (source.label, every_arm, id(source.model()))
    if every_arm and source.arms is not None:
        return identity, source.arms
    return identity, lambda: [TrainedModel("", source.model(), source.config, source.task, source.val_pairs, 0)]


def recovery_view(container: Any, found: list[Exposure], key: str) -> None:
    """The headline, then recovery and the errors after both prefixes, side by side at 1,400 px (stacked at 800)."""
    if not found:
        container.info("The probe needs validation examples, which this model's task could not regenerate.")
        return
    container.markdown(f"**{plain(recovery_headline(found))}**")
    arms = {arm: [model.recovery for model in models] for arm, models in by_arm(found).items()}
    row = container.container(horizontal=True, key=f"{key}_probe_charts")
    chart(row.container(width=460), recovery_figure(arms), f"{key}_recovery", notes.RECOVERY)
    chart(row.container(width=460), prefix_error_figure(arms), f"{key}_prefix_errors", notes.PREFIX_ERRORS)


def drift_view(container: Any, found: list[Exposure], key: str) -> None:
    """The distance by position for every arm, and one model's two clouds in a plane (a picker when several)."""
    measured = [(model.label, model.drift) for model in found if model.drift is not None]
    if not measured:
        return
    arms: dict[str, list[Drift]] = {}
    for label, drift in measured:
        arms.setdefault(arm_of(label), []).append(drift)
    row = container.container(horizontal=True, key=f"{key}_drift_charts")
    chart(row.container(width=460), drift_figure(arms), f"{key}_drift", notes.DRIFT)
    right = row.container(width=460)
    index = 0
    if len(measured) > 1:
        index = right.selectbox("Model in the plane", range(len(measured)), format_func=lambda k: measured[k][0],
                                key=f"{key}_plane_model", help="Whose teacher-forced and free-running states the "
                                                               "plane draws")
    label, drift = measured[index]
    title = "Decoder h_t in one plane" + (f": {label}" if label else "")
    chart(right, drift_plane_figure(drift, title), f"{key}_drift_plane", notes.DRIFT_PLANE)
