"""Many users at once (a benchmark, not a test: pytest never collects it): `python tools/bench_load.py`.

One Streamlit server of its own on a copy of a `trust` demo (loopback only, a free port):

- ``--browsers`` users (default 20), signed in as finance, csu and viewer in turn, each opening the
  pages its role sees with filters (CSU, specialty, metric, target, benchmark) taken from the
  demo's largest opportunities, one after another with ``--think`` seconds of reading between
  (default 2-8), for ``--minutes`` (default 5). They speak Streamlit's own WebSocket protocol
  (protocol_browse), as the page in a browser does, but without a browser: a user's browser runs
  on the user's machine, and 20 Chromium renderers on these 2 cores would measure Chromium;
- ``--editors`` users (default 2) in headless Chromium (Debian's, at the lowest CPU priority), signed
  in through the form as finance, all editing the same scheme on Shortlist & plans: load it, think
  0-2 s, change the Lead, Save details. Each save must either land ("Saved.") or show the conflict
  message; afterwards the scheme's version must have risen by exactly the number of saves that
  landed (no lost update, no silent overwrite).

Server time per interaction comes from the app's own log (one ``page_run`` line per script run,
with its duration, app.py); errors are any error box, Streamlit exception or sign-in form on a page
and any error line in the log; memory is the server process's VmRSS at the start and the end.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.app_harness import ARGS, CHROMIUM, READY_JS, running_app  # noqa: E402

ERROR_TEXTS = ("This app has encountered an error", "Something went wrong", "Traceback")
CONFLICT_TEXTS = ("after you opened it", "Someone else saved a change")
BROWSERS = ("finance", "csu", "viewer")
SHOTS = Path(tempfile.gettempdir())  # an editor's screen when a save could not be made (set in main)
THINK = (2.0, 8.0)  # seconds a user reads a page before the next click (--think)


@dataclass
class Tally:
    interactions: int = 0
    client_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    saves: int = 0
    conflicts: int = 0
    unclear: int = 0


def views(db: Path) -> dict[str, list[str]]:
    """Links (path?query) each demo user may open: every page its role sees, with filters from the
    trust's largest opportunities (the CSU user's from its own CSU)."""
    import duckdb

    from opportunity_engine import users
    from opportunity_engine.analysis.opportunities import opportunities

    con = duckdb.connect(str(db), read_only=True)
    out: dict[str, list[str]] = {}
    for username in BROWSERS:
        user = users.get_user(con, username)
        assert user is not None, f"demo user {username} missing: build the db with `demo --scale trust`"
        top = opportunities(con, user.scope).sort_values("opportunity_gbp", ascending=False).head(8)
        links = ["/overview", "/overview?target=top_quartile", "/overview?benchmark=internal", "/opportunities",
                 "/opportunities?target=top_decile", "/tracking", "/library", "/guide", "/feedback"]
        for r in top.itertuples():
            links += [f"/explore?{urlencode({'csu': r.csu_code})}",
                      f"/explore?{urlencode({'csu': r.csu_code, 'specialty': r.specialty_code})}",
                      f"/metric?{urlencode({'csu': r.csu_code, 'specialty': r.specialty_code, 'metric': r.metric_id})}",
                      f"/opportunities?{urlencode({'csu': r.csu_code})}"]
        if user.can_edit_schemes:
            links += ["/shortlist", f"/shortlist?{urlencode({'csu': top.iloc[0].csu_code})}"]
        if user.has_finance_duties:
            links.append("/adoption")
        out[username] = links
    con.close()
    return out


def scheme_to_edit(db: Path) -> tuple[int, int]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    row = con.execute("SELECT scheme_id, version FROM schemes WHERE status <> 'rejected' ORDER BY scheme_id LIMIT 1").fetchone()
    con.close()
    assert row, "the demo has no scheme to edit"
    return int(row[0]), int(row[1])


async def settle(page, timeout: float = 120) -> None:
    """Until the script has finished and nothing is stale, held for half a second."""
    deadline, calm = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if await page.evaluate(READY_JS):
            calm = calm or time.monotonic()
            if time.monotonic() - calm > 0.5:
                return
        else:
            calm = None
        await asyncio.sleep(0.1)
    raise TimeoutError("page did not settle")


async def main_text(page) -> str:
    main = page.locator('[data-testid="stMain"]')
    return await main.inner_text() if await main.count() else ""


async def check(page, tally: Tally, where: str) -> str:
    text = await main_text(page)
    if await page.locator('[data-testid="stException"]').count() or any(e in text for e in ERROR_TEXTS):
        tally.errors.append(f"{where}: {text[:200]!r}")
    return text


async def sign_in(page, url: str, username: str, tally: Tally | None = None) -> None:
    """Sign in; on a loaded machine a first page can time out: tried three times, each failure counted."""
    for attempt in range(3):
        try:
            await _sign_in(page, url, username)
            return
        except Exception as exc:
            if tally is None or attempt == 2:
                raise
            tally.errors.append(f"{username} sign-in: {exc!r}"[:300])


async def _sign_in(page, url: str, username: str) -> None:
    await page.goto(url)
    await settle(page)
    await page.get_by_role("textbox", name="Username").fill(username)
    await page.get_by_role("textbox", name="Password").fill("demo")
    await page.get_by_role("button", name="Sign in").click()
    await settle(page)
    await page.get_by_role("button", name="Sign out").wait_for(timeout=120_000)


def minted_cookies(db: Path, usernames: list[str], key: str) -> list[str]:
    """A live sign-in session per simulated user, written into ``db`` before the server opens it,
    and the Cookie header that carries each (what a browser sends after signing in: ui.resume_session
    reads it). Sign-in itself is measured by bench_app and tested under concurrency elsewhere."""
    import jwt

    from opportunity_engine import users
    from opportunity_engine.config import settings
    from opportunity_engine.store import db as store

    name = settings()["auth"]["cookie_name"]
    expires = int(time.time()) + 86_400
    with store.connect(db) as con:
        tokens = [users.start_session(con, u) for u in usernames]
    return [f"{name}={jwt.encode({'sid': t, 'exp': expires}, key, algorithm='HS256')}" for t in tokens]


async def protocol_browse(url: str, cookie: str, username: str, links: list[str], until: float, tally: Tally,
                          seed: int, think: tuple[float, float] = THINK) -> None:
    """One browsing user speaking Streamlit's own protocol (what the browser's page sends and
    receives on its WebSocket), without a browser: the user's browser runs on the user's own machine,
    so only the server's work should share these 2 cores. Each click asks the server to run a page
    with its link's parameters (as following a link inside the app does) and waits until the run
    has finished; error boxes, exceptions and a sign-in form are counted as errors."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.typing import Origin, Subprotocol

    rnd = random.Random(seed)
    early = ForwardMsg.ScriptFinishedStatus.FINISHED_EARLY_FOR_RERUN
    await asyncio.sleep(seed * 0.5)
    async with websockets.connect(url.replace("http://", "ws://") + "/_stcore/stream", subprotocols=[Subprotocol("streamlit")],
                                  additional_headers={"Cookie": cookie}, origin=Origin(url), max_size=None,
                                  open_timeout=120) as ws:
        while time.monotonic() < until:
            link = rnd.choice(links)
            page, _, query = link.lstrip("/").partition("?")
            ask = BackMsg()
            ask.rerun_script.query_string = query
            ask.rerun_script.page_name = page
            started = time.perf_counter()
            await ws.send(ask.SerializeToString())
            texts: list[str] = []
            try:
                while True:
                    reply = ForwardMsg()
                    reply.ParseFromString(await asyncio.wait_for(ws.recv(), 120))
                    kind = reply.WhichOneof("type")
                    if kind == "script_finished" and reply.script_finished != early:
                        break
                    if kind == "delta" and reply.delta.WhichOneof("type") == "new_element":
                        element = reply.delta.new_element
                        what = element.WhichOneof("type")
                        if what == "exception":
                            texts.append("Traceback " + element.exception.message)
                        elif what == "alert":
                            texts.append(element.alert.body)
                        elif what == "text_input" and element.text_input.label == "Username":
                            texts.append("signed out")
            except Exception as exc:  # a timeout is a finding, not a crash of the benchmark
                tally.errors.append(f"{username} {link}: {exc!r}"[:300])
                return
            tally.client_ms.append((time.perf_counter() - started) * 1000)
            tally.interactions += 1
            bad = [t for t in texts if t == "signed out" or any(e in t for e in ERROR_TEXTS)]
            if bad:
                tally.errors.append(f"{username} {link}: {bad[0][:200]!r}")
            await asyncio.sleep(rnd.uniform(*think))  # reading the page


async def edit(browser, url: str, scheme_id: int, n: int, until: float, tally: Tally) -> None:
    """Load the scheme, think, change the Lead, save: the save lands or says someone else changed it."""
    rnd = random.Random(1000 + n)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(120_000)
    page = await context.new_page()
    try:
        await asyncio.sleep(n * 1.5 + 0.7)
        await sign_in(page, url, "finance", tally)
        i = 0
        while time.monotonic() < until:
            i += 1
            try:
                await page.goto(f"{url}/shortlist?scheme={scheme_id}")
                await settle(page)
                form = page.locator('[data-testid="stForm"]').filter(has=page.get_by_role("button", name="Save details"))
                await asyncio.sleep(rnd.uniform(0, 2))
                await form.get_by_role("textbox", name="Lead").fill(f"Load editor {n} save {i}")
                await form.get_by_role("button", name="Save details").click()
                await settle(page)
            except Exception as exc:
                tally.errors.append(f"editor {n} save {i}: {exc!r}"[:300])
                with contextlib.suppress(Exception):  # what the editor saw, beside the server log
                    await page.screenshot(path=str(SHOTS / f"editor-{n}-save-{i}.png"), full_page=True)
                continue
            text = await check(page, tally, f"editor {n} save {i}")
            for _ in range(40):  # a loaded server may still be answering the click: wait for its word
                if "Saved." in text or any(c in text for c in CONFLICT_TEXTS):
                    break
                await asyncio.sleep(0.5)
                text = await main_text(page)
            if "Saved." in text:
                tally.saves += 1
            elif any(c in text for c in CONFLICT_TEXTS):
                tally.conflicts += 1
            else:
                tally.unclear += 1
    finally:
        await context.close()


def server_pid(port: str) -> int:
    """The streamlit process serving ``port`` (running_app does not hand out its Popen)."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                args = (proc / "cmdline").read_bytes().split(b"\0")
                if b"streamlit" in b" ".join(args) and port.encode() in args:
                    return int(proc.name)
    raise RuntimeError(f"no streamlit process on port {port}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (/proc/PID/stat fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def server_log(path: Path) -> tuple[list[dict], list[str]]:
    runs, errors = [], []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            if "Traceback" in line or "Error" in line:
                errors.append(line[:200])
            continue
        if rec.get("event") == "page_run":
            runs.append(rec)
        if rec.get("level") in ("error", "critical") or "exception" in rec:
            errors.append(f"{rec.get('event')}: {str(rec.get('exception', ''))[-200:]}")
    return runs, errors


def lowest_priority(server: int, cpus: set[int] | None = None) -> None:
    """Every thread of every process but the server's at nice 19 (and, given ``cpus``, on those
    CPUs only). Chromium raises its own threads' priority (as root it may), so inheriting nice 19
    from this process is not enough."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == server:
            continue
        with contextlib.suppress(OSError):
            if b"chromium" not in (proc / "cmdline").read_bytes():
                continue
            for task in (proc / "task").iterdir():
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, int(task.name), 19)
                    if cpus:
                        os.sched_setaffinity(int(task.name), cpus)


async def keep_browsers_low(server: int, memory: list[float], cpus: set[int] | None = None) -> None:
    """Keeps the browsers at the lowest priority, and samples the server's memory once a minute."""
    tick = 0
    while True:
        lowest_priority(server, cpus)
        if tick % 60 == 0:
            memory.append(rss_mb(server))
        tick += 1
        await asyncio.sleep(1.0)


async def drive(url: str, pid: int, args, links: dict[str, list[str]], scheme_id: int) -> dict:
    from playwright.async_api import async_playwright

    browse_tally, edit_tally = Tally(), Tally()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        memory: list[float] = []
        renicer = asyncio.create_task(keep_browsers_low(pid, memory, {args.browser_cpu} if args.browser_cpu is not None else None))
        warm = await browser.new_context()
        warm.set_default_timeout(120_000)  # one user first: the app's imports and first caches, then memory
        await sign_in(await warm.new_page(), url, "finance")
        await warm.close()
        until = time.monotonic() + 60 * args.minutes  # sign-ins (bcrypt for 22 at once) are inside the window
        start_at = time.monotonic()
        tasks = [protocol_browse(url, args.cookies[i], BROWSERS[i % 3], links[BROWSERS[i % 3]], until, browse_tally, i,
                                 args.think) for i in range(args.browsers)]
        tasks += [edit(browser, url, scheme_id, n, until, edit_tally) for n in range(args.editors)]
        rss_start, cpu_start, runs_before = rss_mb(pid), cpu_seconds(pid), len(server_log(args.log_path)[0])
        for failed in await asyncio.gather(*tasks, return_exceptions=True):  # a user that never signed in
            if isinstance(failed, BaseException):
                browse_tally.errors.append(f"a user gave up: {failed!r}"[:300])
        elapsed = time.monotonic() - start_at
        renicer.cancel()
        await browser.close()
    return {"browse": browse_tally, "edit": edit_tally, "rss_start": rss_start, "rss_end": rss_mb(pid), "elapsed": elapsed,
            "cpu": cpu_seconds(pid) - cpu_start, "runs_before": runs_before, "memory": memory}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "oe-bench-load-trust.duckdb",
                    help="a `trust` demo database (built there if missing); the server runs on a copy")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--browsers", type=int, default=20, help="simulated users browsing")
    ap.add_argument("--editors", type=int, default=2, help="simulated users editing one scheme")
    ap.add_argument("--browser-cpu", type=int, default=None,
                    help="keep the editors' Chromium on this CPU only (a user's browser runs on the user's own "
                         "machine; on these 2 cores it otherwise takes turns with the server)")
    ap.add_argument("--think", default=f"{THINK[0]:g}-{THINK[1]:g}",
                    help="seconds a browsing user reads a page before the next click, MIN-MAX")
    ap.add_argument("--memory-report", type=Path, default=None, metavar="FILE",
                    help="the server appends a JSON line of what holds its memory after each 30-second collection "
                         "(OPPORTUNITY_MEMORY_REPORT, ui.py; it walks every object, so server times rise a little)")
    args = ap.parse_args()
    low, high = args.think.split("-")
    args.think = (float(low), float(high))
    if not args.db.exists():
        print(f"building the trust demo at {args.db} (about a minute)", flush=True)
        subprocess.run([sys.executable, "-m", "opportunity_engine", "demo", "--db", str(args.db), "--scale", "trust"],
                       cwd=ROOT, check=True)
    links = views(args.db)
    scheme_id, version_before = scheme_to_edit(args.db)
    workdir = Path(tempfile.mkdtemp(prefix="oe-bench-load-"))
    global SHOTS
    SHOTS = workdir
    log_path = workdir / "server.log"
    env = {"STREAMLIT_SERVER_ADDRESS": "127.0.0.1", "OPPORTUNITY_COOKIE_KEY": "bench-load-key-" + "x" * 32}  # loopback only
    if args.memory_report:
        env["OPPORTUNITY_MEMORY_REPORT"] = str(args.memory_report.resolve())
    args.log_path = log_path
    source = workdir / "source.duckdb"  # the demo copy the server runs on, with the users' sessions in it
    shutil.copy(args.db, source)
    args.cookies = minted_cookies(source, [BROWSERS[i % 3] for i in range(args.browsers)], env["OPPORTUNITY_COOKIE_KEY"])
    with running_app(source, workdir, env_extra=env, log=log_path) as url:
        pid = server_pid(url.rsplit(":", 1)[1])
        # The users' browsers stand in for their own machines: at the lowest CPU priority (this
        # process, and every Chromium thread, see lowest_priority), so the server gets the 2 cores
        # whenever it wants them and its times are the server's, not the browsers' rendering.
        os.nice(19)
        result = asyncio.run(drive(url, pid, args, links, scheme_id))
    import duckdb

    con = duckdb.connect(str(workdir / "e2e.duckdb"), read_only=True)
    row = con.execute("SELECT version FROM schemes WHERE scheme_id = ?", [scheme_id]).fetchone()
    version_after = int(row[0]) if row else version_before
    con.close()
    runs, log_errors = server_log(log_path)
    runs = runs[result["runs_before"]:]  # the warm-up user's runs are not the load's
    ms = [float(r["ms"]) for r in runs]
    b, e = result["browse"], result["edit"]
    pinned = f", on CPU {args.browser_cpu}" if args.browser_cpu is not None else ""
    print(f"\nMany users at once: {args.browsers} browsing (reading {args.think[0]:g}-{args.think[1]:g} s a page) + "
          f"{args.editors} editing (Chromium at nice 19{pinned}), {result['elapsed'] / 60:.1f} min (sign-in included), "
          f"server log {log_path}")
    print(f"  server CPU {result['cpu']:.0f} s in {result['elapsed']:.0f} s "
          f"({result['cpu'] / result['elapsed']:.2f} of a core; {len(ms) / result['elapsed']:.1f} script runs a second)")
    print(f"  page views: {b.interactions} browsing + {e.saves + e.conflicts + e.unclear} edit rounds; "
          f"click to page finished (protocol users) p50 {pct(b.client_ms, .5):.0f} ms, p95 {pct(b.client_ms, .95):.0f} ms")
    print(f"  server time per script run ({len(ms)} runs): p50 {pct(ms, .5):.0f} ms, p95 {pct(ms, .95):.0f} ms, "
          f"max {max(ms, default=float('nan')):.0f} ms, mean {statistics.fmean(ms) if ms else float('nan'):.0f} ms")
    cpu = [float(r.get("cpu_ms", "nan")) for r in runs]
    print(f"  CPU of the run's own thread (what the page costs, without waits for other sessions): "
          f"p50 {pct(cpu, .5):.0f} ms, p95 {pct(cpu, .95):.0f} ms, mean {statistics.fmean(cpu) if cpu else float('nan'):.0f} ms")
    by_page: dict[str, list[dict]] = {}
    for r in runs:
        by_page.setdefault(r["page"], []).append(r)
    for page, page_runs in sorted(by_page.items()):
        values = [float(r["ms"]) for r in page_runs]
        page_cpu = [float(r.get("cpu_ms", "nan")) for r in page_runs]
        print(f"    {page:<14} {len(values):>5} runs  p50 {pct(values, .5):>5.0f}  p95 {pct(values, .95):>5.0f}  "
              f"max {max(values):>6.0f} ms; CPU p50 {pct(page_cpu, .5):>4.0f} ms")
    # Every save the editors saw lands (the version rises by at least that); no save lands unseen
    # beyond the rounds whose answer never showed (neither "Saved." nor a conflict within 20 s).
    change = version_after - version_before
    held = e.saves <= change <= e.saves + e.unclear
    print(f"  edits: {e.saves} saved, {e.conflicts} refused as conflicts, {e.unclear} with no answer shown; scheme "
          f"{scheme_id} version {version_before} → {version_after} "
          f"({'no lost update' if held else f'MISMATCH: {change} changes for {e.saves} saves'})")
    print(f"  errors: {len(b.errors) + len(e.errors)} on pages, {len(log_errors)} in the server log")
    for err in (b.errors + e.errors + log_errors)[:10]:
        print(f"    {err}")
    print(f"  server memory (VmRSS): {result['rss_start']:.0f} MB after the first sign-in, {result['rss_end']:.0f} MB at the end; "
          f"once a minute: {', '.join(f'{m:.0f}' for m in result['memory'])} MB")


if __name__ == "__main__":
    main()
