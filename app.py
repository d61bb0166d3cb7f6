"""Seq2Seq Playground: page config and navigation, nothing else."""

import streamlit as st

st.set_page_config(page_title="Seq2Seq Playground", page_icon=":material/swap_horiz:", layout="wide")
st.navigation([
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page("pages/hidden_states.py", title="Hidden states", icon=":material/grid_on:"),
    st.Page("pages/compare.py", title="Compare ratios", icon=":material/compare_arrows:"),
]).run()
