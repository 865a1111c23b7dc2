"""How numbers are shown: £1.2m / £45k in the UI (exports keep exact values), metric values in
their own units. Pure functions, so pages never do arithmetic on money themselves."""
from __future__ import annotations

import math
import re


def gbp_short(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v >= 1e6:
        return f"{sign}£{v / 1e6:.1f}m"
    if v >= 1e3:
        return f"{sign}£{v / 1e3:.0f}k"
    return f"{sign}£{v:,.0f}"


def gbp_whole(value: float | None) -> str:
    """Whole pounds with the sign before the £: '-£2,348' (tables where the exact figure matters)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{'-' if value < 0 else ''}£{abs(value):,.0f}"


def metric_value(value: float | None, value_format: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if value_format == "percent":
        return f"{value * 100:.1f}%"
    if value_format == "days":
        return f"{value:.2f} days"
    if value_format == "minutes":
        return f"{value:.0f} min"
    if value_format == "gbp":
        return gbp_short(value)
    return f"{value:.2f} : 1"  # a ratio (follow-ups per first attendance) read with its unit, never bare


def units(value: float | None, unit: str) -> str:
    """A quantity in its unit: '7,584 bed days', '8.6 spells', '£413k agency spend', '0 bed days'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit.startswith("£"):  # money-valued gaps (e.g. agency spend) read as money
        return f"{gbp_short(value)} {unit[1:].strip()}"
    if value == 0:
        return f"0 {unit}"
    return f"{value:,.0f} {unit}" if abs(value) >= 10 else f"{value:,.1f} {unit}"


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def month(period: str | None) -> str:
    """'2025-04' as 'Apr 2025' (how the trust writes months); anything else unchanged."""
    if not period or len(period) != 7 or period[4] != "-" or not period[5:].isdigit() or not 1 <= int(period[5:]) <= 12:
        return period or "–"
    return f"{MONTHS[int(period[5:]) - 1]} {period[:4]}"


def months(period_from: str | None, period_to: str | None) -> str:
    """An analysis window: 'Apr 2025 to Mar 2026'."""
    return f"{month(period_from)} to {month(period_to)}"


# --- text that leaves the tool: never a live formula ------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")  # OWASP's CSV-injection list, plus a line feed
# Characters a spreadsheet may skip or fold before it decides a cell is a formula: spaces (also
# no-break and ideographic), zero-width characters and the byte-order mark.
_IGNORED = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000" \
           "\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad"
# Full-width and small forms of = + - @ (an East Asian IME, or Excel itself, may fold them to ASCII)
# and the minus sign.
_LOOKALIKE = str.maketrans({"＝": "=", "＋": "+", "－": "-", "＠": "@", "﹦": "=", "﹢": "+", "﹣": "-",
                            "﹫": "@", "−": "-"})


def safe_text(value: str) -> str:
    """Text that Excel or LibreOffice will never read as a formula: a cell starting with = + - @,
    tab, CR or LF (OWASP), also after leading spaces or zero-width characters, or with a
    full-width ＝＋－＠, gets a leading apostrophe. Every CSV the tool writes and both workbooks
    use this one rule; numbers are never passed here, so they stay numbers."""
    if value.startswith(("\t", "\r", "\n")):
        return "'" + value
    head = value.lstrip(_IGNORED)[:1].translate(_LOOKALIKE)
    return "'" + value if head and head in FORMULA_START else value


def safe_frame(frame):
    """A copy of a DataFrame for CSV: every text cell through ``safe_text``; numbers, dates and
    missing values untouched (a number column is never turned into text)."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if values.dtype == object or str(values.dtype) in ("string", "str"):
            try:  # each distinct text once: a column of CSU names holds 19 of them in 760 rows
                distinct = values.dropna().unique()
            except TypeError:  # unhashable cells (lists): every cell then
                distinct = values.dropna().tolist()
            changed = {v: safe_text(v) for v in distinct if isinstance(v, str) and safe_text(v) != v}
            if changed:
                out[column] = [changed.get(v, v) if isinstance(v, str) else v for v in values]
    out.columns = [safe_text(c) if isinstance(c, str) else c for c in out.columns]
    return out


def write_csv(frame, out, **options) -> None:
    """A DataFrame as CSV for a spreadsheet: text through ``safe_text``, RFC 4180 line ends (CRLF),
    so a field holding a CR or LF is quoted and cannot break a row in two (the half after the
    break would start a new, unprefixed cell)."""
    safe_frame(frame).to_csv(out, index=False, lineterminator="\r\n", **options)


# --- text shown in the app: always literal -----------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")
# GitHub-flavoured autolinks (www., http://, https://, mailto:, xmpp:, name@host) are found in
# the text after escapes are decoded (remark-gfm, which Streamlit's markdown uses), so a backslash
# does not stop them: Chromium showed "http\:\/\/evil\.example" drawn as a live link. An
# invisible WORD JOINER (U+2060) after the scheme word and before '@' breaks the pattern.
_AUTOLINK = re.compile(r"(?i)(https?|www|mailto|xmpp)(?=[:.])|(?=@)")
WORD_JOINER = "\u2060"


def plain(value: object) -> str:
    """Text a user, an import or a link wrote, made safe to put inside Streamlit markdown (which
    st.markdown, st.caption, st.error, st.header... all render): every ASCII punctuation mark
    is backslash-escaped (CommonMark allows it for all of them), so a link, an image, emphasis,
    a heading, a list, LaTeX ($), an emoji or colour directive (:red[...]) or an autolinked
    http://... shows as the characters typed; '<' and '&' escaped mean HTML never renders.
    An autolink is broken by an invisible word joiner (see _AUTOLINK). Line breaks are kept."""
    text = "" if value is None else str(value)
    text = _AUTOLINK.sub(lambda m: (m.group(1) or "") + WORD_JOINER, text)
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "  \n")
