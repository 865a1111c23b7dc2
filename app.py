"""Opportunity Explorer: sign-in, role-based navigation and the error boundary around every page.

Run with `make run`. Pages are thin: they read the view from the URL, call opportunity_engine and
render. Every page is registered even before sign-in (hidden), so a deep link or a browser
refresh keeps its page and query parameters while the sign-in cookie is read.
"""
from __future__ import annotations

import time

import streamlit as st
import streamlit_authenticator as stauth
from streamlit.runtime.scriptrunner import get_script_run_ctx

import ui
from opportunity_engine import feedback, logs, usage, users
from opportunity_engine.analysis import freshness
from opportunity_engine.analysis.opportunities import default_peer_group, peer_groups
from opportunity_engine.analysis.targets import (
    BENCHMARK_LABELS,
    BENCHMARKS,
    CUSTOM_BEST,
    TARGET_LABELS,
    TARGETS,
    custom_best,
    custom_target,
)
from opportunity_engine.config import settings
from opportunity_engine.errors import Refusal
from opportunity_engine.formatting import plain
from opportunity_engine.scope import ScopeError
from opportunity_engine.users import User

log = logs.setup()
run_started = time.perf_counter()  # server time of this run, logged as page_run when the page ends
run_cpu_started = time.thread_time()  # and the CPU this run's own thread used (without waits for other sessions)
ui.start_run()
ui.start_housekeeping()

# Presentation mode opens with the sidebar collapsed: the projector's 1280 px go to the tables.
# The icon is drawn here and served by this server: a :material: icon is fetched from a font host on
# every page, which a trust network without internet access blocks.
st.set_page_config(page_title="Opportunity Explorer", page_icon=ui.app_icon(), layout="wide",
                   initial_sidebar_state="collapsed" if ui.presenting() else "auto")
st.markdown(ui.BASE_CSS, unsafe_allow_html=True)

PAGES = {
    "overview": st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", url_path="overview", default=True),
    "explore": st.Page("pages/explore.py", title="Explore", icon=":material/account_tree:", url_path="explore"),
    "opportunities": st.Page("pages/opportunities.py", title="Opportunities", icon=":material/format_list_numbered:",
                             url_path="opportunities"),
    "metric": st.Page("pages/metric.py", title="Metric detail", icon=":material/monitoring:", url_path="metric"),
    "shortlist": st.Page("pages/shortlist.py", title="Shortlist & plans", icon=":material/checklist:", url_path="shortlist"),
    "tracking": st.Page("pages/tracking.py", title="Tracking", icon=":material/trending_up:", url_path="tracking"),
    "library": st.Page("pages/library.py", title="Library", icon=":material/local_library:", url_path="library"),
    "data": st.Page("pages/data.py", title="Data", icon=":material/database:", url_path="data"),
    "adoption": st.Page("pages/adoption.py", title="Adoption", icon=":material/groups:", url_path="adoption"),
    "feedback": st.Page("pages/feedback.py", title="Feedback", icon=":material/forum:", url_path="feedback"),
    "guide": st.Page("pages/guide.py", title="Guide", icon=":material/menu_book:", url_path="guide"),
}


def _overview_by_its_name() -> None:
    """Open ``/overview`` (the Overview's own name, in bookmarks and links) as the Overview.

    Streamlit serves the default page at ``/`` and matches a typed address against each page's
    url_path, which for the default page is "": ``/overview`` matched no page, so its "Page not
    found" dialog covered the Overview, and the sign-in form (inert under it). Before navigation
    resolves the address, a request by that name is made a request for the page itself; its
    query parameters are kept (``/overview?target=top_quartile``)."""
    ctx = get_script_run_ctx()
    manager = getattr(ctx, "pages_manager", None)
    overview = PAGES["overview"]
    if (manager is not None and not getattr(manager, "intended_page_script_hash", None)
            and getattr(manager, "intended_page_name", None) == overview._url_path):
        manager.set_script_intent(overview._script_hash, "")


_overview_by_its_name()


# Pages a user sees: all of them, except those that need a capability the user's role lacks.
PAGE_NEEDS = {"shortlist": lambda u: u.can_edit_schemes, "data": lambda u: u.can_manage_data,
              "adoption": lambda u: u.has_finance_duties}


# Who may open a page that needs a capability: named when someone else follows a link to it.
PAGE_FOR_WHOM = {"shortlist": "finance, admin and CSU team users", "data": "admin users",
                 "adoption": "finance and admin users"}


def pages_for(user) -> list[str]:
    return [name for name in PAGES if PAGE_NEEDS.get(name, lambda u: True)(user)]


FEEDBACK_KEYS = ("csu", "specialty", "metric", "scheme", "target", "benchmark", "peer", "fy")
COOKIE_RUNS = 1  # render the cookie write/delete on one completed run: each render makes the component rerun the page


def _cookie_later(action: str) -> None:
    """Ask the next completed run to set or delete the sign-in cookie. The widget renders its
    cookie component just before a rerun, which often drops it; rendered on a completed run, the
    browser receives it, so a refresh signs in (or, after sign-out, does not) as it should. Only
    once: the component reruns the page each time it is rendered, and a click landing in that
    chain of reruns was lost (the first click after signing in did nothing)."""
    st.session_state["_oe_cookie"] = [action, COOKIE_RUNS]


def _flush_cookie() -> None:
    pending = st.session_state.get("_oe_cookie")
    if not pending:
        return
    if pending[0] == "set" and st.session_state.get(ui.SESSION_KEY):
        # rendered on every run until the browser confirms it, then never again
        if ui.set_session_cookie(authenticator.cookie_controller.cookie_model.cookie_manager,
                                 st.session_state[ui.SESSION_KEY]):
            del st.session_state["_oe_cookie"]
    elif pending[0] == "delete" and pending[1] > 0:
        pending[1] -= 1
        authenticator.cookie_controller.delete_cookie()


def _clear_session(*_) -> None:
    """Sign-out ends the server-side session (a copy of the cookie is then worthless), forgets
    everything the session held (views, seen versions) and deletes the cookie."""
    users.end_session(ui.cursor(), st.session_state.get(ui.SESSION_KEY), "signed out")
    held = st.session_state.get("_oe_staged")
    if held is not None:  # the upload's folder goes now: a last page run still holds it until a collection
        held.discard()
    for key in list(st.session_state):
        if key not in ("authentication_status", "username", "name", "email", "roles", "logout"):
            del st.session_state[key]
    _cookie_later("delete")


def _check_credentials(username: str, password: str) -> bool:
    """The widget's password check, replaced by the engine's: the attempt is counted before
    bcrypt and the lock-out is read at that moment (users.attempt_sign_in). A locked account is
    refused without checking the password."""
    result = users.attempt_sign_in(ui.cursor(), username, password)
    st.session_state["_oe_attempt"] = result
    if result.refused:
        raise stauth.LoginError("locked")
    return result.ok


auth_cfg = settings()["auth"]
max_failures, lockout_minutes = users.lockout_policy()
idle_minutes, _ = users.session_policy()
# The widget reads the users only to draw and answer the sign-in form: a signed-in run needs none
# of them (their hashes were read on every page view).
creds = {"usernames": {}} if st.session_state.get("authentication_status") else users.credentials(ui.cursor())
# login_sleep_time=0: the widget's default 0.7 s pause waits for a cookie component, but the
# cookie is read from the HTTP request (st.context.cookies), so the pause only slows the first page.
ui.use_request_cookies()
authenticator = stauth.Authenticate(creds, auth_cfg["cookie_name"], ui.cookie_key(),
                                    float(auth_cfg["cookie_expiry_days"]), auto_hash=False, login_sleep_time=0)
# The library draws the form; the password check and the cookie are ours. Its own cookie holds
# only {username, expiry}, valid until it expires whatever happens on the server: never read it.
authenticator.authentication_controller.authentication_model.check_credentials = _check_credentials
authenticator.cookie_controller.cookie_model.get_cookie = lambda: None
authenticator.cookie_controller.cookie_model.set_cookie = lambda: None


def _signed_in_by_form(event: dict) -> None:
    """Runs only after a password sign-in (not the cookie): start the server-side session,
    count the sign-in, and write the cookie on the next runs (a st.rerun in this run would drop it)."""
    cur = ui.cursor()
    st.session_state[ui.SESSION_KEY] = users.start_session(cur, event["username"])
    _cookie_later("set")
    log.info("sign_in", extra={"username": event["username"]})
    user = users.get_user(cur, event["username"])
    if user:
        usage.record(cur, user, "sign_in")


ended = False
if st.session_state.get("authentication_status"):
    # Checked on every run: sign-out elsewhere, a password reset, a role change, the user's
    # removal or the idle timeout ends this session now, not when the cookie expires.
    if users.session_user(ui.cursor(), st.session_state.get(ui.SESSION_KEY)) != st.session_state.get("username"):
        log.info("session_ended", extra={"username": st.session_state.get("username")})
        authenticator.authentication_controller.logout(_clear_session)
        ended = True
else:
    ui.resume_session(ui.cursor())  # the cookie's session token, if its session is still live

if not st.session_state.get("authentication_status"):
    st.navigation(list(PAGES.values()), position="hidden")  # keep the URL's page while signed out
    _flush_cookie()
    st.title("Opportunity Explorer")
    st.caption("Find, agree and deliver cost-improvement schemes from the trust's own activity data.")
    if ended:
        st.info(f"Your session has ended (signed out, password or role changed, or no use for {idle_minutes} "
                "minutes). Sign in again.")
    try:
        authenticator.login(location="main", callback=_signed_in_by_form,
                            fields={"Form name": "Sign in", "Username": "Username", "Password": "Password",
                                    "Login": "Sign in"})
    except stauth.LoginError:
        st.error(f"This account is locked after {max_failures} failed sign-ins. Try again in {lockout_minutes} "
                 "minutes, or ask an administrator to reset your password.")
        log.warning("sign_in_refused_locked")
        st.stop()
    if st.session_state.get("authentication_status") is False:
        attempt = st.session_state.pop("_oe_attempt", None)
        locked = bool(attempt and attempt.locked)
        log.warning("sign_in_failed", extra={"attempted_username": attempt.username if attempt else "",
                                             "failures": attempt.failures if attempt else 0, "locked": locked})
        st.error("Username or password is incorrect." + (
            f" The account is now locked for {lockout_minutes} minutes." if locked else ""))
    if not st.session_state.get("authentication_status"):
        st.stop()
    st.rerun()  # signed in: rebuild the navigation for the user's role on the same URL

user = ui.current_user()
if user is None:  # signed in to a user since removed from the database
    authenticator.logout(location="unrendered")
    st.rerun()

_flush_cookie()

landing = st.session_state.pop("_oe_landing", None)
if landing in pages_for(user):  # a deep link that a fresh server first ran outside navigation
    st.switch_page(PAGES[landing], query_params=dict(st.query_params))

def _refused_page() -> str | None:
    """The page the browser asked for (a typed, bookmarked or old link) that this user's role may
    not open, or None. Streamlit would quietly run the default page instead; we say why."""
    ctx = get_script_run_ctx()
    if ctx is None:  # no script context (never in a served app)
        return None
    try:
        manager = ctx.pages_manager
        name, page_hash = manager.intended_page_name, manager.intended_page_script_hash
    except AttributeError:  # no script context (never in a served app)
        return None
    for key, page in PAGES.items():
        if key not in pages_for(user) and (name == page.url_path or (page_hash and page_hash == page._script_hash)):
            return key
    return None


def _refusal(key: str, user: User) -> st.Page:
    """A stand-in with the refused page's address: it names who may open it and links back."""
    title = PAGES[key].title

    def refuse() -> None:
        st.title(title)
        st.error(f"{title} is not available to you: it is for {PAGE_FOR_WHOM.get(key, 'other')}, and you are signed "
                 f"in as {user.role_label} ({user.scope.label}). Ask finance if you need it.",
                 icon=":material/block:")
        st.page_link(PAGES["overview"], label="Go to the Overview", icon=":material/dashboard:")

    return st.Page(refuse, title=title, icon=":material/block:", url_path=PAGES[key].url_path)


refused = _refused_page()
navigation = st.navigation([PAGES[name] for name in pages_for(user)] + ([_refusal(refused, user)] if refused else []))
view_text = "&".join(f"{k}={v}" for k, v in sorted(st.query_params.items()) if k in FEEDBACK_KEYS)
view_key = (navigation.url_path, view_text)
if st.session_state.get("_oe_last_view") != view_key:
    st.session_state["_oe_last_view"] = view_key
    ui.record("page_view", navigation.url_path or "overview", view_text)


def _feedback_control(user: User) -> None:
    """Stars and a comment from any page, stored with the page and view the user is on."""
    with st.popover("Feedback", icon=":material/rate_review:", width="stretch",
                    help="Tell the Opportunity Explorer team what works and what does not on this page."):
        with st.form("feedback", clear_on_submit=True, border=False):
            stars = st.feedback("stars", key="feedback_stars")
            comment = st.text_area("Comment", max_chars=2000, help="Recorded with the page and view you are on.")
            if st.form_submit_button("Send feedback", help="Stored with this page and view; answers appear under Feedback."):
                if stars is None:
                    st.toast("Choose a rating from 1 to 5 stars, then send again.", icon=":material/warning:")
                else:
                    feedback.submit(ui.cursor(), user, navigation.url_path or "overview", view_text, stars + 1, comment)
                    st.toast("Thank you: see Feedback for what we did about it.", icon=":material/check:")


with st.sidebar:
    st.markdown(f"**{plain(user.name)}**  \n{user.role_label} · {plain(user.scope.label)}")
    current = ui.basis()
    options = TARGETS + ("custom",)
    best = custom_best(current.target)
    chosen = st.selectbox("Target", options, index=options.index("custom" if best else current.target),
                          format_func=lambda t: TARGET_LABELS.get(t, "Custom: best N %"),
                          help="Median, top quartile or top decile of the benchmark, or a level of your own. "
                               "'Top' always means the better end: low values for lower-is-better metrics, high "
                               "values otherwise.")
    if chosen == "custom":
        best = st.slider("Best % of units", CUSTOM_BEST[0], CUSTOM_BEST[1], value=best or 35, step=5,
                         help="Aim for the level of the best N % of units: 50 is the median, 25 the top "
                              "quartile, 10 the top decile. Between the benchmark's percentiles the level is "
                              "read on a straight line.")
        chosen = custom_target(best)
    bench = st.selectbox("Benchmark", BENCHMARKS, index=BENCHMARKS.index(current.benchmark),
                         format_func=lambda b: BENCHMARK_LABELS.get(b, b),
                         help="Peer trusts' percentiles, or percentiles across the trust's own units.")
    groups = peer_groups(ui.cursor())
    group = current.peer_group
    if bench == "peer" and groups:
        group = st.selectbox("Peer group", groups, index=groups.index(group) if group in groups else 0,
                             help="Which of the benchmarks' peer groups the targets come from (national, region, "
                                  "recommended peers, ...). Also ?peer=NAME in the link.")
    present = st.toggle("Presentation mode", value=ui.presenting(),
                        help="Larger type and no editing controls, for CIP meetings. Also ?present=1 in the link.")
    for key, value, default in (("target", chosen, "median"), ("benchmark", bench, "peer")):
        if value != default:
            st.query_params[key] = value
        elif key in st.query_params:
            del st.query_params[key]
    if bench == "peer" and group and group != default_peer_group(groups):
        st.query_params["peer"] = group
    elif "peer" in st.query_params:
        del st.query_params["peer"]
    if present:
        st.query_params["present"] = "1"
    elif "present" in st.query_params:
        del st.query_params["present"]
    if not ui.presenting():
        _feedback_control(user)
    authenticator.logout("Sign out", location="sidebar", callback=_clear_session)
    if not st.session_state.get("authentication_status"):
        st.rerun()  # signed out: straight to the sign-in form, before any page asks who is signed in

if ui.presenting():
    st.markdown(ui.PRESENTATION_CSS, unsafe_allow_html=True)

stale = freshness.stale_warning(ui.cursor())
if stale:
    st.warning(stale, icon=":material/schedule:")

try:
    navigation.run()
except ScopeError as exc:
    st.error(f"{plain(exc)} Ask finance if you need access.")
except Refusal as exc:  # the engine refused with advice no page action caught: still advice
    st.error(plain(exc))
except Exception:  # control-flow exceptions (st.stop, st.rerun) are BaseException and pass through
    log.exception("page_error", extra={"page": navigation.url_path or "overview", "username": user.username,
                                       "view": view_text})
    st.error("Something went wrong showing this page. It has been logged; please try again or tell the "
             "Opportunity Explorer team what you were doing.")
finally:  # also when the page stops or reruns: one line per run, for the load benchmark and a log collector
    log.info("page_run", extra={"page": navigation.url_path or "overview", "username": user.username,
                                "ms": round((time.perf_counter() - run_started) * 1000, 1),
                                "cpu_ms": round((time.thread_time() - run_cpu_started) * 1000, 1)})
    ui.end_run()
