"""The few Streamlit pieces several pages share; the only part of the library that imports streamlit.

Everything it shows comes from the rest of `playground`: `settings` (the sidebar and its link), `runs` (runs on
a page: attach, live view, charts, the runs panel), `inspection` (the Hidden states and Decode pickers), `people`
(the session's seat, the teacher, control links) and `actions` (the guard every button acts through). Pages
import from here.
"""

from playground.ui.actions import guarded_action, show_refusal
from playground.ui.inspection import MAX_EXAMPLES, Source, inspection_sidebar
from playground.ui.people import (
    check_control,
    claim_link_secrets,
    control_link,
    is_teacher,
    may_control,
    remember_seat,
    seat_link,
    seat_notice,
    session_owner,
)
from playground.ui.probe import drift_view, exposures, recovery_view, source_models
from playground.ui.runs import (
    LINK_PAGES,
    attached_run,
    chart,
    chart_format_picker,
    compounding_errors,
    explained,
    live_run_view,
    open_run,
    polls,
    queue_place,
    run_label,
    runs_panel,
    script_download,
    state_preview,
    visible_runs,
)
from playground.ui.settings import (
    BOUND,
    checked_config,
    current_settings,
    glossary_link,
    link_text,
    load_settings,
    schedule_name,
    setting_value,
    setting_widget,
    settings_share,
    settings_sidebar,
    share_link,
    share_slot,
)

__all__ = [
    "BOUND",
    "LINK_PAGES",
    "MAX_EXAMPLES",
    "Source",
    "attached_run",
    "chart",
    "chart_format_picker",
    "check_control",
    "checked_config",
    "claim_link_secrets",
    "compounding_errors",
    "control_link",
    "current_settings",
    "drift_view",
    "explained",
    "exposures",
    "glossary_link",
    "guarded_action",
    "inspection_sidebar",
    "is_teacher",
    "link_text",
    "live_run_view",
    "load_settings",
    "may_control",
    "open_run",
    "polls",
    "queue_place",
    "recovery_view",
    "remember_seat",
    "run_label",
    "runs_panel",
    "schedule_name",
    "script_download",
    "seat_link",
    "seat_notice",
    "session_owner",
    "setting_value",
    "setting_widget",
    "settings_share",
    "settings_sidebar",
    "share_link",
    "share_slot",
    "show_refusal",
    "source_models",
    "state_preview",
    "visible_runs",
]
