"""Feedback: "You said, we did" for everyone; triage (new → planned → done) for admins."""
import streamlit as st

import ui
from opportunity_engine import feedback
from opportunity_engine.formatting import plain

user = ui.require_user()
cur = ui.cursor()
st.title("Feedback")
st.caption("Use **Feedback** at the foot of the sidebar on any page to tell us what works and what does not; "
           "it records the page and view you were on.")

st.subheader("You said, we did")
done = feedback.you_said_we_did(cur)
if done.empty:
    st.info("Nothing closed yet: answered feedback appears here.")
else:
    done["page"] = done["page"].map(ui.page_title)
    st.dataframe(done.rename(columns={"done_on": "Done", "page": "Page", "you_said": "You said", "we_did": "We did"}),
                 hide_index=True, width="stretch",
                 column_config={"Done": st.column_config.DatetimeColumn(format="D MMM YYYY")})

if user.can_triage_feedback and not ui.presenting():
    st.subheader("Triage")
    status = st.segmented_control("Show", ["new", "planned", "done"], default="new",
                                  help="New items need a decision; planned ones are being worked on.")
    items = feedback.listing(cur, status)
    if items.empty:
        st.info(f"No {status or ''} feedback.")
    for item in items.itertuples(index=False):
        with st.container(border=True):
            st.markdown(f"**{'★' * int(item.rating)}{'☆' * (5 - int(item.rating))}** · {plain(ui.page_title(item.page))}"
                        f"{' · ' + plain(item.view) if item.view else ''} · {plain(item.username)} · {item.submitted_at:%d %b %Y}")
            st.markdown(plain(item.comment) if item.comment else "_(no comment)_")
            with st.form(f"triage-{item.feedback_id}"):
                a, b = st.columns([1, 3])
                new_status = a.selectbox("Status", feedback.STATUSES, index=feedback.STATUSES.index(item.status),
                                         help="done + a response puts it in You said, we did.")
                response = b.text_input("Response (what we did)", item.response,
                                         help="Shown to everyone in You said, we did once the status is done.")
                if st.form_submit_button("Update", help="Saves the status and response (audited)."):
                    feedback.triage(cur, user, int(item.feedback_id), new_status, response)
                    st.rerun()
