"""What a model does inside, all through its one decoder step: state capture and PCA (`states`), decoding
(step-through, beam search, errors by position: `decoding`) and the task preview (`preview`)."""

from playground.inspection.decoding import (
    FED_OWN,
    FED_TRUE,
    MAX_BEAM_WIDTH,
    StepThrough,
    beam_search,
    check_source,
    free_running_mistakes,
    greedy,
    position_errors,
    step_through,
)
from playground.inspection.preview import TaskPreview, parameter_counts, task_preview
from playground.inspection.states import (
    UNIT_ORDERS,
    StateCapture,
    capture_csv,
    capture_npz,
    capture_states,
    context_vectors,
    decoder_path,
    divergence_step,
    example_property,
    fit_projection,
    informative_units,
    unit_order,
)

__all__ = [
    "FED_OWN",
    "FED_TRUE",
    "MAX_BEAM_WIDTH",
    "UNIT_ORDERS",
    "StateCapture",
    "StepThrough",
    "TaskPreview",
    "beam_search",
    "capture_csv",
    "capture_npz",
    "capture_states",
    "check_source",
    "context_vectors",
    "decoder_path",
    "divergence_step",
    "example_property",
    "fit_projection",
    "free_running_mistakes",
    "greedy",
    "informative_units",
    "parameter_counts",
    "position_errors",
    "step_through",
    "task_preview",
    "unit_order",
]
