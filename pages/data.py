"""Data (admin): what is loaded, how fresh it is, and how to load more."""
import streamlit as st

import ui
from opportunity_engine.opportunities import freshness

user = ui.require_user()
if user.role != "admin":
    st.error("The Data page is for administrators.")
    st.stop()
st.title("Data")
st.caption("Freshness of each source. Imports run from the command line while the app is stopped "
           "(`python -m opportunity_engine import --db PATH FILE ...`); browser upload arrives with the Data page issue.")
fresh = freshness(ui.cursor())
if fresh.empty:
    st.info("Nothing loaded yet.")
else:
    st.dataframe(fresh.rename(columns={"source": "Source", "latest_period": "Latest month", "rows": "Rows in last load",
                                       "loaded_by": "Loaded by", "loaded_at": "Loaded at", "loads": "Loads"}),
                 hide_index=True, width="stretch",
                 column_config={"Rows in last load": st.column_config.NumberColumn(format="localized"),
                                "Loads": st.column_config.NumberColumn(format="localized")})
