"""Seq2Seq Playground: process settings, page config and navigation, nothing else.

Torch's CPU threads are set once, here, for the whole server (PLAYGROUND_TORCH_THREADS, default 1): training
threads share them, and the other core stays free for the web server and the browser.
"""

import os

import streamlit as st
import torch

from playground.runs.registry import registry
from playground.training import warm_imports
from playground.ui import claim_link_secrets, is_teacher, remember_seat
from playground.ui.settings import drop_unreadable_numbers
from playground.ui.uploads import bound_upload_store, limit_uploads_for_a_class, release_uploads


@st.cache_resource(show_spinner=False)
def set_up_process() -> None:
    """Once per server process, not at every rerun of this script: uploads held within bounds; serving a class,
    a request's upload no larger than the class needs and no error's details (a traceback names the server's
    files) sent to a browser."""
    torch.set_num_threads(int(os.environ.get("PLAYGROUND_TORCH_THREADS", "1")))
    warm_imports()
    bound_upload_store()
    if registry().shared:
        st.set_option("client.showErrorDetails", "none")
        limit_uploads_for_a_class()


set_up_process()
release_uploads()
claim_link_secrets()
drop_unreadable_numbers()
class_page = [st.Page("app_pages/classroom.py", title="Class", icon=":material/groups:")] if is_teacher() else []
page = st.navigation([
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page("app_pages/hidden_states.py", title="Hidden states", icon=":material/grid_on:"),
    st.Page("app_pages/decode.py", title="Decode", icon=":material/step:"),
    st.Page("app_pages/compare.py", title="Compare ratios", icon=":material/compare_arrows:"),
    st.Page("app_pages/study.py", title="Study", icon=":material/query_stats:"),
    st.Page("app_pages/lessons.py", title="Lessons", icon=":material/school:"),
    st.Page("app_pages/glossary.py", title="Glossary", icon=":material/menu_book:"),
    *class_page,
])
st.set_page_config(page_title=f"{page.title} · Seq2Seq Playground", page_icon=":material/swap_horiz:", layout="wide")
remember_seat()
page.run()
