"""Seq2Seq Playground: page config and navigation, nothing else."""

import streamlit as st

st.set_page_config(page_title="Seq2Seq Playground", page_icon=":material/swap_horiz:", layout="wide")
st.navigation([st.Page("pages/train.py", title="Train", icon=":material/model_training:", default=True)]).run()
