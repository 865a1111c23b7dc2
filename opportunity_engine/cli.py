"""Command line (DATA.md contract): init, demo, import, opportunities, export, users.

Exit codes: 0 done, 1 rejected or failed with a message (never a traceback), 2 bad arguments.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

# The opportunity maths (pandas, NumPy) load only in the commands that compute: a monthly
# `import` is a fresh process, and loading pandas was half a second of it.
from .analysis.targets import BENCHMARKS, TARGETS, is_target
from .config import database_path, settings
from .formatting import write_csv
from .scope import Scope, ScopeError
from .store import db as dbmod
from .users import ROLES

if TYPE_CHECKING:
    from .analysis.opportunities import Basis


def _db_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=None,
                        help="database file (default: $OPPORTUNITY_DB, else config.toml)")


def _target(value: str) -> str:
    if not is_target(value):
        raise argparse.ArgumentTypeError(f"{value!r}: use {', '.join(TARGETS)} or best_N with N from 10 to 90")
    return value


def _basis_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", type=_target, default="median",
                        help="median, top_quartile, top_decile, or best_N: the level of the best N %% of units "
                             "(N from 10 to 90)")
    parser.add_argument("--benchmark", choices=BENCHMARKS, default="peer")
    parser.add_argument("--peer-group", default=None, metavar="NAME",
                        help="the benchmarks' peer group for peer targets (national, region, ...); default: "
                             "[analysis] peer_group in config.toml if the data holds it, else the first group")
    parser.add_argument("--csu", default=None, help="one CSU code")
    parser.add_argument("--from", dest="period_from", default=None, metavar="YYYY-MM")
    parser.add_argument("--to", dest="period_to", default=None, metavar="YYYY-MM")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m opportunity_engine",
                                     description="Opportunity Explorer engine")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="make a ready, empty database for a trust (schema, shipped catalogue and "
                                    "unit costs, the first admin user)")
    _db_arg(p)
    p.add_argument("--admin", default=None, metavar="USERNAME", help="the first admin's username (prompted if omitted)")
    p.add_argument("--name", default=None, help="the first admin's full name (prompted if omitted)")
    p.add_argument("--email", default="")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the admin's password from standard input instead of prompting")
    p.add_argument("--no-admin", action="store_true", help="add no user now (add one later with `users add`)")

    p = sub.add_parser("demo", help="build the synthetic demo database")
    _db_arg(p)
    p.add_argument("--seed", type=int, default=int(settings()["demo"]["seed"]))
    p.add_argument("--scale", choices=("small", "trust", "large"), default=settings()["demo"]["scale"])
    p.add_argument("--force", action="store_true", help="replace a file that is not a demo database")
    p.add_argument("--as-of", type=_iso_date, default=None, metavar="YYYY-MM-DD",
                   help="build as if on this day: the data end at the last complete month before it (default today)")

    p = sub.add_parser("import", help="validate and load template files (one transaction)")
    _db_arg(p)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--dry-run", action="store_true",
                   help="check the files and say what a load would add, replace and remove; change nothing")
    p.add_argument("--mapping", default=None, metavar="NAME",
                   help="a column mapping saved on the Data page: files whose header matches no template are "
                        "read through it (their own column names onto the template's)")

    p = sub.add_parser("opportunities", help="print opportunities, one row per CSU, specialty and metric")
    _db_arg(p)
    _basis_args(p)
    p.add_argument("--format", choices=("csv", "json"), default="csv")

    p = sub.add_parser("significance", help="per metric: share of units flagged significant, naive (sampling "
                                            "error only) versus over-dispersed (Spiegelhalter), and the total's 80%% range")
    _db_arg(p)
    _basis_args(p)

    p = sub.add_parser("export", help="write the opportunities workbook (.xlsx)")
    _db_arg(p)
    _basis_args(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--user", default="command line", help="name shown on the cover sheet")

    p = sub.add_parser("export-plans", help="write the shortlist and plans workbook (.xlsx)")
    _db_arg(p)
    p.add_argument("--fy", type=int, default=None, help="financial year, e.g. 2026 for 2026/27 (default: current)")
    p.add_argument("--csu", default=None, help="one CSU code")
    p.add_argument("--as-user", default=None, metavar="USERNAME",
                   help="export with this user's scope and name (default: whole trust, 'command line')")
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("comparators", help="print the like-for-like figures: internal ÷ peer total, "
                                            "unlike comparisons over £1m, crude v case-mix adjusted length of stay")
    _db_arg(p)

    p = sub.add_parser("schema", help="show or upgrade the database schema version")
    _db_arg(p)

    p = sub.add_parser("backup", help="write a consistent copy of the database to a new file")
    _db_arg(p)
    p.add_argument("--out", type=Path, default=None,
                   help="backup file (default: backups/opportunity-YYYYMMDD-HHMMSS.duckdb beside the database)")

    p = sub.add_parser("users", help="manage sign-in users (passwords are stored as bcrypt hashes)")
    users_sub = p.add_subparsers(dest="action", required=True)
    u = users_sub.add_parser("add", help="add a user")
    _db_arg(u)
    u.add_argument("username")
    u.add_argument("--name", required=True, help="full name shown in the app")
    u.add_argument("--role", choices=ROLES, required=True)
    u.add_argument("--csu", action="append", default=[], metavar="CODE",
                   help="a CSU the user may see (repeat for several; required for role csu)")
    u.add_argument("--email", default="")
    u.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input instead of prompting")
    u = users_sub.add_parser("remove", help="remove a user")
    _db_arg(u)
    u.add_argument("username")
    u = users_sub.add_parser("reset-password", help="set a new password for a user")
    _db_arg(u)
    u.add_argument("username")
    u.add_argument("--password-stdin", action="store_true")
    u = users_sub.add_parser("set-role", help="change a user's role and CSUs (their sessions end)")
    _db_arg(u)
    u.add_argument("username")
    u.add_argument("--role", choices=ROLES, required=True)
    u.add_argument("--csu", action="append", default=[], metavar="CODE",
                   help="a CSU the user may see (repeat for several; required for role csu)")
    u = users_sub.add_parser("list", help="list users, roles and CSUs (never passwords)")
    _db_arg(u)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = args.db or database_path()
    try:
        return COMMANDS[args.command](args, Path(path))
    except BrokenPipeError:  # output piped into `head` and cut short: not an error
        sys.stderr.close()
        return 0
    except (ScopeError, ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the contract: a message, never a traceback
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "lock" in message.lower():
            message += " (is the app running on this database? import through its Data page instead)"
        print(f"error: {message}", file=sys.stderr)
        return 1


def _ask(prompt: str, given: str | None) -> str:
    if given:
        return given
    if not sys.stdin.isatty():
        raise ValueError(f"{prompt.lower()} is needed: pass it as an option, or run init in a terminal")
    return input(f"{prompt}: ").strip()


def cmd_init(args, path: Path) -> int:
    """A ready, empty database: the same state any command or the app gives a new file, plus the
    first admin, so a trust starts here and loads its own extracts on the Data page."""
    from . import users

    existed = path.exists()
    if existed and not args.no_admin:
        with dbmod.connect(path) as con:
            if users.list_users(con):
                raise ValueError(f"{path} already has users: add more with `users add`")
    admin = None
    if not args.no_admin:  # asked before the file is made, so a refused prompt leaves nothing behind
        username = _ask("Admin username", args.admin)
        name = _ask("Admin full name", args.name)
        password = _read_password(args)
    with dbmod.connect(path) as con:  # connect migrates and installs the shipped catalogue and unit costs
        if not args.no_admin:
            admin = users.add_user(con, username, name, password, "admin", [], args.email)
        counts = {t: dbmod.scalar(con, f"SELECT count(*) FROM {t}") for t in ("metrics", "unit_costs", "csus", "spells")}
        sources = dbmod.scalar(con, "SELECT count(DISTINCT source) FROM unit_costs")
    print(f"{'Opened' if existed else 'Created'} {path}: schema version {dbmod.LATEST_VERSION}, "
          f"{counts['metrics']} catalogue metrics, {counts['unit_costs']} unit costs from {sources} sources, "
          f"{counts['csus']} CSUs and {counts['spells']:,} spells loaded.")
    if admin:
        print(f"Added admin {admin.username}. Next: load csus, specialties, benchmarks and activity files "
              f"(Data page, or `import --db {path} FILE ...`).")
    return 0


def _iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write it as YYYY-MM-DD, e.g. 2026-12-01") from None


def cmd_demo(args, path: Path) -> int:
    from .demo.generator import build

    started = time.perf_counter()
    summary = build(path, seed=args.seed, scale=args.scale, force=args.force, as_of=args.as_of)
    rows = ", ".join(f"{k} {v:,}" for k, v in summary.rows.items())
    print(f"Built demo database {path} (seed {args.seed}, scale {args.scale}) in "
          f"{time.perf_counter() - started:.1f} s: {rows}")
    return 0


def cmd_import(args, path: Path) -> int:
    from .store.importer import import_files

    def progress(message: str, fraction: float) -> None:
        if not args.quiet:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr)

    with dbmod.connect(path) as con:
        files = list(args.files)
        if args.mapping is not None:
            import tempfile

            from .store import mappings
            from .store.importer import matches_template

            mapping = mappings.get(con, args.mapping)
            if mapping is None:
                held = ", ".join(mappings.names(con)) or "none saved yet: save one on the Data page"
                raise ValueError(f"no column mapping {args.mapping!r} (saved: {held})")
            files = mappings.prepare(con, files, mapping, Path(tempfile.mkdtemp(prefix="oe-mapped-")),
                                     matches_template)
        result = import_files(con, files, progress=progress, dry_run=args.dry_run)
    print(result.report(), file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def _scope_for(con, csu: str | None) -> Scope:
    if csu is None:
        return Scope.trust()
    known = con.execute("SELECT count(*) FROM csus WHERE csu_code = ?", [csu]).fetchone()[0]
    if not known:
        raise ValueError(f"unknown CSU code {csu}")
    return Scope.of(csu)


def _basis(con, args) -> Basis:
    """The basis of the arguments with the peer group named; an unknown group is an error."""
    from .analysis.opportunities import Basis, peer_groups, resolve_peer_group

    basis = Basis(args.target, args.benchmark, args.period_from, args.period_to, args.peer_group)
    groups = peer_groups(con)
    if args.peer_group is not None and args.peer_group not in groups:
        held = ", ".join(groups) if groups else "none: load a benchmarks file"
        raise ValueError(f"no peer group {args.peer_group!r} in the benchmarks (held: {held})")
    return resolve_peer_group(con, basis)


def cmd_opportunities(args, path: Path) -> int:
    from .analysis.opportunities import missing_targets_note, opportunities

    with dbmod.connect(path, read_only=True) as con:
        basis = _basis(con, args)
        df = opportunities(con, _scope_for(con, args.csu), basis, csu=args.csu)
    note = missing_targets_note(df, basis)
    if note:  # never a silent £0: say which metrics have no target (stdout stays pure data)
        print(f"note: {note}", file=sys.stderr)
    if args.format == "csv":
        # imported CSU/specialty names are text from outside: never a live formula in Excel
        write_csv(df, sys.stdout, float_format="%.17g")
    else:
        json.dump(json.loads(df.to_json(orient="records", double_precision=15)), sys.stdout, indent=1)
        print()
    return 0


def cmd_significance(args, path: Path) -> int:
    """The issue-12 measure: how many units a naive funnel flags against the over-dispersed one."""
    from .analysis.opportunities import Basis, opportunities, significance_shares, totals
    from .reports.views import headline

    with dbmod.connect(path, read_only=True) as con:
        basis = Basis(args.target, args.benchmark, args.period_from, args.period_to)
        df = opportunities(con, _scope_for(con, args.csu), basis, csu=args.csu)
    shares = significance_shares(df)
    print(f"{basis.label}: {headline(totals(df))}")
    print(f"{'metric':<24}{'units':>6}{'naive':>8}{'over-dispersed':>16}{'phi':>9}{'tau2':>11}")
    for r in shares.itertuples(index=False):
        print(f"{r.metric_id:<24}{r.units:>6}{r.naive_share:>8.0%}{r.adjusted_share:>16.0%}{r.phi:>9.1f}{r.tau2:>11.3g}")
    if len(shares):
        units = shares["units"].sum()
        naive = (shares["naive_share"] * shares["units"]).sum() / units
        adjusted = (shares["adjusted_share"] * shares["units"]).sum() / units
        print(f"{'all metrics':<24}{units:>6}{naive:>8.0%}{adjusted:>16.0%}")
    return 0


def cmd_export(args, path: Path) -> int:
    from .reports.export import opportunities_workbook

    with dbmod.connect(path, read_only=True) as con:
        basis = _basis(con, args)
        scope = _scope_for(con, args.csu)
        data = opportunities_workbook(con, scope, basis, user=args.user, csu=args.csu)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"Wrote {args.out} ({len(data):,} bytes)")
    return 0


def cmd_export_plans(args, path: Path) -> int:
    import datetime as dt

    from .delivery.plans import current_fy
    from .reports.export_plans import plans_workbook
    from .users import User, get_user

    with dbmod.connect(path, read_only=True) as con:
        if args.as_user:
            user = get_user(con, args.as_user)
            if user is None:
                raise ValueError(f"no user {args.as_user}")
        else:
            user = User("command-line", "command line", "", "finance", ())
        if args.csu:
            _scope_for(con, args.csu)  # unknown CSU → message
            user.scope.check(args.csu)
        data = plans_workbook(con, user, args.fy or current_fy(dt.date.today()), csu=args.csu)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"Wrote {args.out} ({len(data):,} bytes)")
    return 0


def cmd_comparators(args, path: Path) -> int:
    from .reports.comparators import comparators

    with dbmod.connect(path, read_only=True) as con:
        print("\n".join(comparators(con).lines()))
    return 0


def cmd_schema(args, path: Path) -> int:
    with dbmod.connect(path) as con:
        print(f"{path}: schema version {dbmod.schema_version(con)} (engine {dbmod.LATEST_VERSION})")
    return 0


def cmd_backup(args, path: Path) -> int:
    out = args.out or dbmod.backup_path(path)
    if not path.exists():
        raise FileNotFoundError(f"No database at {path}")
    with dbmod.connect(path) as con:  # a read-only database cannot attach a file to write the copy into
        dbmod.backup(con, out)
    print(f"Backed up {path} to {out} ({out.stat().st_size:,} bytes). To restore: stop the app, then copy it over "
          f"{path} (or point OPPORTUNITY_DB at it).")
    return 0


def _read_password(args) -> str:
    """Passwords never come from the command line itself (they would sit in shell history)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise ValueError("the two passwords differ")
    return first


def cmd_users(args, path: Path) -> int:
    from . import users

    with dbmod.connect(path) as con:
        if args.action == "add":
            user = users.add_user(con, args.username, args.name, _read_password(args), args.role,
                                  args.csu, args.email)
            print(f"Added {user.username} ({user.role}{': ' + ', '.join(user.csus) if user.csus else ''})")
        elif args.action == "remove":
            users.remove_user(con, args.username)
            print(f"Removed {args.username}")
        elif args.action == "reset-password":
            users.reset_password(con, args.username, _read_password(args))
            print(f"Password reset for {args.username}")
        elif args.action == "set-role":
            user = users.set_role(con, args.username, args.role, args.csu)
            print(f"{user.username} is now {user.role}{': ' + ', '.join(user.csus) if user.csus else ''}")
        else:
            for user in users.list_users(con):
                print(f"{user.username}\t{user.role}\t{','.join(user.csus)}\t{user.name}")
    return 0


COMMANDS = {"init": cmd_init, "demo": cmd_demo, "import": cmd_import, "opportunities": cmd_opportunities,
            "significance": cmd_significance,
            "export": cmd_export, "schema": cmd_schema, "users": cmd_users, "backup": cmd_backup,
            "export-plans": cmd_export_plans, "comparators": cmd_comparators}
