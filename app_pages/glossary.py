"""Glossary: the words the app uses, each explained once, with its formula where one helps."""

from __future__ import annotations

import streamlit as st

from playground.course import TERMS, anchor

st.title("Glossary")
st.caption("The words of this app, for someone who knows what a neural network is but has not met a sequence-to-"
           "sequence model yet.")
for term in TERMS.values():
    st.subheader(term.title, anchor=anchor(term.title))
    st.markdown(term.text)
    if term.formula:
        st.latex(term.formula)
