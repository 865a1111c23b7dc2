"""Guide: the guidance notes and training aid, with worked examples from the live data."""
import streamlit as st

import ui
from opportunity_engine.reports import guide

user = ui.require_user()
sections = guide.sections(ui.cursor(), user.scope)
st.title("Guide")
st.caption("How to use Opportunity Explorer and how every number is worked out. The worked examples use the data "
           "loaded now, so they match what the other pages show.")
st.download_button("Download printable guide (HTML)", lambda: guide.to_html(sections), file_name="opportunity-explorer-guide.html",
                   mime="text/html", icon=":material/print:",
                   help="Opens in any browser; print it or save it as PDF for training sessions.")
contents, body = st.columns([1, 3])
with contents:
    st.markdown("**Contents**\n\n" + "\n".join(f"{i}. {title}" for i, (title, _) in enumerate(sections, 1)))
with body:
    for title, text in sections:
        st.header(title, divider="blue")
        st.markdown(text)
