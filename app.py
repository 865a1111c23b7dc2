"""Opportunity Explorer: sign-in, role-based navigation and the error boundary around every page.

Run with `make run`. Pages are thin: they read the view from the URL, call opportunity_engine and
render. Every page is registered even before sign-in (hidden), so a deep link or a browser
refresh keeps its page and query parameters while the sign-in cookie is read.
"""
from __future__ import annotations

import logging

import streamlit as st
import streamlit_authenticator as stauth

import ui
from opportunity_engine.config import settings
from opportunity_engine.opportunities import BENCHMARK_LABELS, TARGET_LABELS, TARGETS, BENCHMARKS
from opportunity_engine.scope import ScopeError
from opportunity_engine.users import credentials

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
log = logging.getLogger("opportunity_explorer")

st.set_page_config(page_title="Opportunity Explorer", page_icon=":material/query_stats:", layout="wide")
st.markdown(ui.BASE_CSS, unsafe_allow_html=True)

PAGES = {
    "overview": st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", url_path="overview", default=True),
    "explore": st.Page("pages/explore.py", title="Explore", icon=":material/account_tree:", url_path="explore"),
    "metric": st.Page("pages/metric.py", title="Metric detail", icon=":material/monitoring:", url_path="metric"),
    "data": st.Page("pages/data.py", title="Data", icon=":material/database:", url_path="data"),
}
ROLE_PAGES = {
    "admin": ["overview", "explore", "metric", "data"],
    "finance": ["overview", "explore", "metric"],
    "csu": ["overview", "explore", "metric"],
    "viewer": ["overview", "explore", "metric"],
}

auth_cfg = settings()["auth"]
authenticator = stauth.Authenticate(credentials(ui.cursor()), auth_cfg["cookie_name"], ui.cookie_key(),
                                    float(auth_cfg["cookie_expiry_days"]), auto_hash=False)

if not st.session_state.get("authentication_status"):
    st.navigation(list(PAGES.values()), position="hidden")  # keep the URL's page while signed out
    st.title("Opportunity Explorer")
    st.caption("Find, agree and deliver cost-improvement schemes from the trust's own activity data.")
    authenticator.login(location="main", fields={"Form name": "Sign in", "Username": "Username",
                                                 "Password": "Password", "Login": "Sign in"})
    if st.session_state.get("authentication_status") is False:
        st.error("Username or password is incorrect.")
    if not st.session_state.get("authentication_status"):
        st.stop()
    st.rerun()  # signed in: rebuild the navigation for the user's role on the same URL

user = ui.current_user()
if user is None:  # signed in to a user since removed from the database
    authenticator.logout(location="unrendered")
    st.rerun()

navigation = st.navigation([PAGES[name] for name in ROLE_PAGES[user.role]])

with st.sidebar:
    st.markdown(f"**{user.name}**  \n{user.role.capitalize()} · {user.scope.label}")
    current = ui.basis()
    chosen = st.selectbox("Target", TARGETS, index=TARGETS.index(current.target), format_func=TARGET_LABELS.get,
                          help="Median, top quartile or top decile of the benchmark. 'Top' always means the "
                               "better end: low values for lower-is-better metrics, high values otherwise.")
    bench = st.selectbox("Benchmark", BENCHMARKS, index=BENCHMARKS.index(current.benchmark),
                         format_func=BENCHMARK_LABELS.get,
                         help="Peer trusts' percentiles, or percentiles across the trust's own units.")
    present = st.toggle("Presentation mode", value=ui.presenting(),
                        help="Larger type and no editing controls, for CIP meetings. Also ?present=1 in the link.")
    for key, value, default in (("target", chosen, "median"), ("benchmark", bench, "peer")):
        if value != default:
            st.query_params[key] = value
        elif key in st.query_params:
            del st.query_params[key]
    if present:
        st.query_params["present"] = "1"
    elif "present" in st.query_params:
        del st.query_params["present"]
    authenticator.logout("Sign out", location="sidebar")

if ui.presenting():
    st.markdown(ui.PRESENTATION_CSS, unsafe_allow_html=True)

try:
    navigation.run()
except ScopeError as exc:
    st.error(f"{exc} Ask finance if you need access.")
except Exception:  # control-flow exceptions (st.stop, st.rerun) are BaseException and pass through
    log.exception("page %s failed for user %s", navigation.title, user.username)
    st.error("Something went wrong showing this page. It has been logged; please try again or tell the "
             "Opportunity Explorer team what you were doing.")
