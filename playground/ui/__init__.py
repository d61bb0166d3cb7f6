"""The few Streamlit pieces several pages share; the only part of the library that imports streamlit.

Everything it shows comes from the rest of `playground`: `settings` (the sidebar and its link), `runs` (runs on
a page: attach, live view, charts, the runs panel) and `inspection` (the Hidden states and Decode pickers).
"""
