"""Train page (the app issue replaces this with live training)."""

import streamlit as st

from playground.tasks import TASKS

st.title("Seq2Seq Playground")
st.dataframe({"task": list(TASKS), "description": [info.description for info in TASKS.values()]})
