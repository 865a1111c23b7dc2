"""Reading extract files as trusts' systems and Excel write them, into text staging tables.

The importer checks rules in SQL over a staging table of text columns plus ``_row``, the row
number a person sees when opening the file in Excel (header = row 1, blank lines counted). This
module gets the file there without losing or inventing a row:

- CSV: any line endings (mixed too), a BOM, blank lines, trailing empty columns, headers in any
  case with spaces for ``_``. A clean file goes through DuckDB's CSV reader (fast); a file DuckDB
  refuses is re-read by Python's csv module, which says exactly which row is wrong and why. A
  non-UTF-8 byte or a NUL is reported at its real row and column.
- .xlsx: the sheet's true extent whatever its stored ``<dimension>`` says (python-calamine reads
  the cells themselves), empty formatted columns ignored, date cells in period columns read as
  the month, formulas refused (the cached value is not what the user typed), the sheet named in
  the report. Rows are streamed into DuckDB in batches so Python memory stays bounded.
"""
from __future__ import annotations

import csv
import datetime as dt
import re
import tempfile
import zipfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import duckdb

MAX_FIELD = 100_000  # characters in one field; longer is an unclosed quote or not an extract
BATCH = 50_000  # rows per batch staged from Python


class Unreadable(Exception):
    """The file cannot be read as an extract; ``row``/``column`` say where when known."""

    def __init__(self, message: str, row: int | None = None, column: str | None = None):
        super().__init__(message)
        self.row = row
        self.column = column


def normalise(name: str) -> str:
    """A header cell as a template column name: case, surrounding spaces and `_` vs space ignored."""
    return re.sub(r"[\s_]+", "_", name.replace("\ufeff", "").strip().lower())


@dataclass
class Header:
    """The header row of one file: names as written, normalised names, and the sheet read."""
    written: list[str]
    sheet: str | None = None
    trailing_blank: int = 0  # empty header cells after the last named column
    row: int = 1  # the header's spreadsheet row (an .xlsx may have empty rows above it)

    @property
    def names(self) -> list[str]:
        return [normalise(h) for h in self.written]


# ---------------------------------------------------------------- CSV

def _row_at(data: bytes, offset: int) -> int:
    """The line (1-based) a byte offset falls on, in data whose line ends are already \\n."""
    return data.count(b"\n", 0, offset) + 1


def _column_at(data: bytes, offset: int, names: list[str]) -> str | None:
    start = data.rfind(b"\n", 0, offset) + 1
    index = data[start:offset].count(b",")
    return names[index] if index < len(names) else None


def _csv_bytes(path: Path) -> bytes:
    """The file's bytes with a BOM dropped and every line ending made \\n."""
    data = path.read_bytes()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise Unreadable("the file is UTF-16 text: save it as 'CSV UTF-8' (or as .xlsx)", 1)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


def _split_header(line: str) -> list[str]:
    csv.field_size_limit(MAX_FIELD)
    try:
        return next(csv.reader([line]))
    except csv.Error:
        raise Unreadable(f"the header row has a field longer than {MAX_FIELD:,} characters "
                         "(or an unclosed quote): the first row must be the column names", 1) from None
    except StopIteration:
        return []


def _header_of(fields: list[str]) -> Header:
    trailing = 0
    while fields and not fields[-1].strip():
        fields = fields[:-1]
        trailing += 1
    return Header([f.strip() for f in fields], trailing_blank=trailing)


def csv_header(path: Path) -> Header:
    with path.open("rb") as fh:
        head = fh.read(MAX_FIELD * 2)
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise Unreadable("the file is UTF-16 text: save it as 'CSV UTF-8' (or as .xlsx)", 1)
    head = head.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not head.strip():
        raise Unreadable("the file is empty: the first row must be the header", 1)
    end = head.find(b"\n")
    first = head if end < 0 else head[:end]
    # Binary when the header itself holds a NUL, or is not text and a NUL follows soon. A text
    # header with one NUL further down is a damaged row: stage_csv reports it at its row.
    if b"\x00" in first[:4096]:
        raise Unreadable("the file is binary, not CSV text", 1)
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        if b"\x00" in head[:4096]:
            raise Unreadable("the file is binary, not CSV text", 1) from None
        if end < 0 and len(head) >= MAX_FIELD * 2:
            text = ""  # an oversized header, said below
        else:
            raise Unreadable("the header row is not UTF-8 text: save the file as 'CSV UTF-8' (or as .xlsx)",
                             1) from None
    if end < 0 and len(head) >= MAX_FIELD * 2:
        raise Unreadable(f"the header row is longer than {MAX_FIELD:,} characters: the first row must be the "
                         "column names", 1)
    if b"\x00" in first:
        raise Unreadable("the file is binary, not CSV text", 1)
    if not text.strip():
        raise Unreadable("the first row is blank: the first row must be the header", 1)
    return _header_of(_split_header(text))


# Blank lines (nothing but spaces or tabs) in CSV text whose line ends are \n. The search starts
# with a literal newline, which Python's regex engine finds fast: a month of outpatients (7 MB) is
# searched in 4 ms, where a pattern anchored by ^ took 33 ms, and matched the end of every file,
# so every file was rewritten (42 ms more). Most files have no blank line and skip the rewrite.
_BLANK_LINE = re.compile(rb"\n[ \t]*\n")


def _fill_blank_lines(body: bytes, filler: bytes) -> bytes:
    """Each blank line outside a quoted value made a row of separators; a blank line inside a
    quoted value (a name typed over several lines in Excel) is part of that value and stays.
    A quote count of odd parity opens or closes a quoted value (an escaped quote is two)."""
    lines = body.split(b"\n")
    quoted = False
    for i, line in enumerate(lines):
        if not quoted and not line.strip(b" \t") and (line or i < len(lines) - 1):
            lines[i] = filler
        if line.count(b'"') % 2:
            quoted = not quoted
    return b"\n".join(lines)


def stage_csv(con: duckdb.DuckDBPyConnection, path: Path, header: Header, names: list[str], table: str) -> None:
    """Stage a CSV into ``table`` (_row BIGINT, then one VARCHAR per name), dropping blank rows.

    ``names`` are the template names for the header's columns in order."""
    data = _csv_bytes(path)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise Unreadable("the file holds a NUL character (it is binary, or was damaged in export)",
                         _row_at(data, nul), _column_at(data, nul, names))
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = data[exc.start:exc.start + 1].hex().upper()
        raise Unreadable(f"byte 0x{byte} is not UTF-8 text (the file is probably Windows-1252): save it as "
                         "'CSV UTF-8' (or as .xlsx)", _row_at(data, exc.start), _column_at(data, exc.start, names)) \
            from None
    width = len(names) + header.trailing_blank
    columns = list(names) + [f"_blank_{i}" for i in range(header.trailing_blank)]
    # A blank line is a row of nothing: fill it with separators so both readers count it as a row.
    body_start = data.find(b"\n") + 1
    last_line = data[data.rfind(b"\n") + 1:]  # spaces without a line end are a blank line too
    if body_start and (_BLANK_LINE.search(data, body_start - 1) or (last_line and not last_line.strip(b" \t"))):
        data = data[:body_start] + _fill_blank_lines(data[body_start:], b"," * (width - 1))
    with tempfile.NamedTemporaryFile("wb", suffix=".csv", delete=False) as tmp:
        tmp.write(data)
    normalised = Path(tmp.name)
    del data
    try:
        try:
            _duckdb_csv(con, normalised, columns, table)
        except duckdb.Error:
            con.execute(f"DROP TABLE IF EXISTS {table}_raw")
            _python_csv(con, normalised, columns, len(names), table)
    finally:
        normalised.unlink(missing_ok=True)
    _check_blank_columns(con, table, header.trailing_blank)


def _duckdb_csv(con, path: Path, columns: list[str], table: str) -> None:
    # The names have been matched against a template, so they are known constants.
    spec = ", ".join(f"'{c}': 'VARCHAR'" for c in columns)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {table}_raw AS
            SELECT * FROM read_csv($path, header = true, auto_detect = false, columns = {{{spec}}},
                                   delim = ',', quote = '"', escape = '"', strict_mode = true,
                                   max_line_size = {MAX_FIELD * 4})""",
        {"path": str(path)})
    # Staged outside any transaction, so rowid is the record's place in the file (from 0): with
    # the header as row 1 the record's spreadsheet row is rowid + 2. Rows with no value at all
    # (blank lines) keep their number and are left out, once: the checks, the duplicates and the
    # typed copy each scan the staged rows, and a view filtering blank rows cost every scan the
    # trims of every column (65 ms a scan for a month of outpatients, 86 ms for this copy).
    empty = " AND ".join(f"nullif(trim(\"{c}\"), '') IS NULL" for c in columns)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {table}_text AS
                    SELECT rowid + 2 AS _row, * FROM {table}_raw WHERE NOT ({empty})""")
    con.execute(f"DROP TABLE {table}_raw")
    named = ", ".join(f'"{c}"' for c in columns if not c.startswith("_blank_"))
    con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT _row, {named} FROM {table}_text")


def _python_csv(con, path: Path, columns: list[str], named: int, table: str) -> None:
    """The careful reader: exact row numbers and reasons for whatever DuckDB's reader refused."""
    csv.field_size_limit(MAX_FIELD)
    width = len(columns)
    with path.open("r", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, strict=True)
        try:
            next(reader)
        except csv.Error:
            raise Unreadable(f"the header row has a field longer than {MAX_FIELD:,} characters", 1) from None

        def rows() -> Iterator[list]:
            row_no = 1
            while True:
                row_no += 1
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    text = str(exc)
                    if "field larger" in text:
                        reason = (f"a field is longer than {MAX_FIELD:,} characters (is a quote left open "
                                  "earlier in the file?)")
                    else:
                        reason = f"the file could not be read as CSV from this row ({text})"
                    raise Unreadable(reason, row_no) from None
                if not any(v.strip() for v in record):
                    continue
                if len(record) > width:
                    if any(v.strip() for v in record[width:]):
                        raise Unreadable(f"the row does not have the same number of columns as the header "
                                         f"({len(record)} values, {named} columns)", row_no)
                    record = record[:width]
                elif len(record) < width:
                    record = record + [""] * (width - len(record))
                yield [row_no] + record

        _stage_rows(con, rows(), columns, table)


def _check_blank_columns(con, table: str, trailing: int) -> None:
    has_row = any(c[0] == "_row" for c in con.execute(f"SELECT * FROM {table}_text LIMIT 0").description)
    row = "_row" if has_row else "rowid + 2"
    for i in range(trailing):
        hit = con.execute(f"""SELECT {row}, "_blank_{i}" FROM {table}_text
                              WHERE nullif(trim("_blank_{i}"), '') IS NOT NULL ORDER BY 1 LIMIT 1""").fetchone()
        if hit:
            raise Unreadable(f"a value ({hit[1][:30]!r}) in a column without a header: name the column or "
                             "delete it", hit[0])


def _stage_rows(con, rows: Iterator[list], columns: list[str], table: str) -> None:
    """Rows ([_row, text, ...]) into a temp table ``{table}_text`` in batches (bounded Python
    memory), seen through the view ``table`` without any unnamed trailing columns."""
    import pyarrow as pa  # here, not at the top: the common CSV path never needs it (0.15 s a process)

    spec = ", ".join(f'"{c}" VARCHAR' for c in columns)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_text (_row BIGINT, {spec})")
    batch: list[list] = []

    def flush() -> None:
        if not batch:
            return
        arrays = [pa.array([r[0] for r in batch], pa.int64())]
        arrays += [pa.array([r[i] for r in batch], pa.string()) for i in range(1, len(columns) + 1)]
        frame = pa.Table.from_arrays(arrays, names=["_row"] + columns)  # noqa: F841 (read by DuckDB)
        con.execute(f"INSERT INTO {table}_text SELECT * FROM frame")
        batch.clear()

    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            flush()
    flush()
    named = ", ".join(f'"{c}"' for c in columns if not c.startswith("_blank_"))
    con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT _row, {named} FROM {table}_text")


# ---------------------------------------------------------------- .xlsx

_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
       "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships"}
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")


@dataclass(frozen=True)
class _SheetInfo:
    name: str
    state: str  # visible | hidden | veryHidden
    part: str  # the sheet's XML inside the zip


def _sheets(book: zipfile.ZipFile) -> tuple[list[_SheetInfo], int]:
    """The workbook's worksheets in order, and the index of the active one."""
    root = ElementTree.fromstring(book.read("xl/workbook.xml"))
    rels = ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))
    targets = {r.get("Id"): r.get("Target", "") for r in rels}
    sheets = []
    for sheet in root.iterfind("m:sheets/m:sheet", _NS):
        target = targets.get(sheet.get(_REL), "")
        part = target.lstrip("/") if target.startswith("/") else "xl/" + target
        sheets.append(_SheetInfo(sheet.get("name", ""), sheet.get("state", "visible"), part))
    view = root.find("m:bookViews/m:workbookView", _NS)
    active = int(view.get("activeTab", "0")) if view is not None else 0
    return sheets, min(active, max(len(sheets) - 1, 0))


def _open_book(path: Path, check_only: bool = False):
    """The workbook (python-calamine; None with ``check_only``), its sheets and the active one."""
    from python_calamine import CalamineWorkbook

    try:
        with zipfile.ZipFile(path) as book:
            sheets, active = _sheets(book)
        workbook = None if check_only else CalamineWorkbook.from_path(str(path))
    except Exception:
        raise Unreadable("the file is not a readable .xlsx workbook (save it again from Excel as .xlsx)") from None
    return workbook, sheets, active


def _first_row(path: Path, sheet: _SheetInfo) -> tuple[int, list]:
    """The sheet's first row holding anything (its spreadsheet row, values from column A): the header."""
    rows = sheet_rows(path, sheet)
    try:
        for row_no, values in rows:
            if _has_data(values):
                return row_no, values
    finally:
        rows.close()
    return 1, []


# A sheet whose XML inflates beyond STREAM_ABOVE is read in parts of about CHUNK bytes of XML:
# python-calamine holds every cell of what it reads at once (0.78 GB peak for 250 MB of cells).
STREAM_ABOVE = 48 * 1024 * 1024
CHUNK = 16 * 1024 * 1024
_SHEET_DATA = re.compile(rb"<((?:[\w.-]+:)?)sheetData\b[^>]*?(/?)>")


def sheet_rows(path: Path, sheet: _SheetInfo) -> Generator[tuple[int, list], None, None]:
    """(spreadsheet row, values from column A) for the rows of the sheet, in order.

    A small sheet is read whole by python-calamine. A larger one is cut at row boundaries into
    parts, each written as a workbook of its own (styles and shared strings as they are) and read
    by calamine in turn, so cells are read exactly alike and memory stays bounded by the part."""
    with zipfile.ZipFile(path) as book:
        size = book.getinfo(sheet.part).file_size
    if size <= STREAM_ABOVE:
        yield from _calamine_rows(path, sheet.name)
        return
    with tempfile.TemporaryDirectory(prefix="xlsx-parts-") as folder:
        for part in _sheet_parts(path, sheet, Path(folder)):
            try:
                yield from _calamine_rows(part, sheet.name)
            finally:
                part.unlink(missing_ok=True)


def _calamine_rows(path: Path, name: str) -> Generator[tuple[int, list], None, None]:
    workbook, _, _ = _open_book(path)
    try:
        found = workbook.get_sheet_by_name(name)
        first_row, first_col = found.start or (0, 0)
        for index, row in enumerate(found.to_python(skip_empty_area=True)):
            yield first_row + index + 1, [None] * first_col + list(row)
    finally:
        workbook.close()


def _sheet_parts(path: Path, sheet: _SheetInfo, folder: Path) -> Iterator[Path]:
    """Copies of the workbook, each holding one run of whole rows of the sheet (CHUNK bytes or so)."""
    with zipfile.ZipFile(path) as book, book.open(sheet.part) as fh:
        buf = b""
        while not (found := _SHEET_DATA.search(buf)):
            more = fh.read(1 << 20)
            if not more:
                return  # no sheetData: no rows
            buf += more
        if found.group(2):  # <sheetData/>
            return
        prefix = found.group(1)
        head = buf[:found.end()]
        tail = b"</" + prefix + b"sheetData></" + prefix + b"worksheet>"
        end_row, end_data = b"</" + prefix + b"row>", b"</" + prefix + b"sheetData>"
        buf = buf[found.end():]
        done = False
        number = 0
        while not done:
            while len(buf) < CHUNK and (more := fh.read(1 << 20)):
                buf += more
            stop = buf.find(end_data)
            if stop >= 0:
                block, done = buf[:stop], True
            else:
                cut = buf.rfind(end_row)
                if cut < 0:
                    more = fh.read(1 << 20)
                    if not more:
                        block, done = buf, True  # a truncated sheet: calamine says what it makes of it
                    else:
                        buf += more
                        continue
                else:
                    cut += len(end_row)
                    block, buf = buf[:cut], buf[cut:]
            number += 1
            out = folder / f"part{number}.xlsx"
            _write_part(book, sheet.part, head + block + tail, out)
            del block
            yield out


def _write_part(book: zipfile.ZipFile, part: str, xml: bytes, out: Path) -> None:
    import shutil

    empty = b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData/></worksheet>'
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as dst:
        for item in book.infolist():
            if item.filename == part:
                dst.writestr(item.filename, xml)
            elif item.filename.startswith("xl/worksheets/") and item.filename.endswith(".xml"):
                dst.writestr(item.filename, empty)  # other sheets are not read: leave their cells out
            else:
                with book.open(item) as src, dst.open(item.filename, "w", force_zip64=True) as target:
                    shutil.copyfileobj(src, target)


def _has_data(row: list) -> bool:
    return any(v not in (None, "") and not (isinstance(v, str) and not v.strip()) for v in row)


def choose_sheet(path: Path, matches) -> str:
    """The sheet to read: the active one; refused when hidden, or when several sheets hold data that
    could be meant (``matches(header_names)`` says whether a header fits a template)."""
    workbook, sheets, active = _open_book(path)
    workbook.close()  # opened to check the file is a workbook calamine reads; rows come from sheet_rows
    if not sheets:
        raise Unreadable("the workbook has no worksheet")
    chosen = sheets[active]
    if chosen.state != "visible":
        raise Unreadable(f"the active sheet '{chosen.name}' is hidden: unhide it, or make the data sheet the "
                         "active one and save")
    headers = {s.name: _first_row(path, s)[1] for s in sheets}
    with_data = [s for s in sheets if _has_data(headers[s.name])]
    if not _has_data(headers[chosen.name]):
        visible = [s for s in with_data if s.state == "visible"]
        if len(visible) == 1:
            return visible[0].name
        if not visible and with_data:
            raise Unreadable(f"the data is on hidden sheet '{with_data[0].name}': unhide it and make it the "
                             "active sheet")
        if not visible:
            raise Unreadable("the sheet is empty: its first row must be the header", 1)
        raise Unreadable(f"the active sheet '{chosen.name}' is empty and {len(visible)} other sheets hold data "
                         f"({', '.join(repr(s.name) for s in visible)}): make the one to load the active sheet")
    others = [s.name for s in with_data if s.name != chosen.name and s.state == "visible"
              and matches([normalise(str(v)) for v in headers[s.name] if v not in (None, "")])]
    if others:
        raise Unreadable(f"the workbook has more than one data sheet ('{chosen.name}', "
                         f"{', '.join(repr(o) for o in others)}): save each as its own file")
    return chosen.name


def xlsx_header(path: Path, sheet: str) -> Header:
    _, sheets, _ = _open_book(path, check_only=True)
    row_no, row = _first_row(path, next(s for s in sheets if s.name == sheet))
    header = _header_of([cell_text(v) for v in row])
    header.sheet = sheet
    header.row = row_no
    return header


def cell_text(value, period: bool = False) -> str:
    """An Excel cell as the text a CSV would hold: dates ISO, whole numbers without .0; in a period
    column a date on the 1st (Excel's reading of a typed 2026-04) is that month."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            value = value.date()
        else:
            return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m") if period and value.day == 1 else value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def _column_letters(ref: bytes) -> str:
    return re.match(rb"[A-Z]+", ref).group().decode()  # type: ignore[union-attr]


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def _formula_cell(path: Path, part: str) -> tuple[str, int, str] | None:
    """The first cell holding a formula (letters, row, formula text), or None. A byte scan finds
    whether there is any (fast); only then is the XML parsed to say where."""
    with zipfile.ZipFile(path) as book, book.open(part) as fh:
        tail = b""
        found = False
        while chunk := fh.read(1 << 20):
            if _FORMULA.search(tail + chunk):
                found = True
                break
            tail = chunk[-16:]
        if not found:
            return None
    with zipfile.ZipFile(path) as book, book.open(part) as fh:
        ref = ""
        for event, element in ElementTree.iterparse(fh, events=("start", "end")):
            tag = element.tag.rsplit("}", 1)[-1]
            if event == "start" and tag == "c":
                ref = element.get("r", "")
            elif event == "end" and tag == "f":
                m = re.match(r"([A-Z]+)(\d+)", ref)
                text = element.text or ("array formula" if element.get("t") == "array" else "shared formula")
                return (m.group(1), int(m.group(2)), text) if m else ("?", 0, text)
            elif event == "end" and tag == "row":
                element.clear()
    return None


def stage_xlsx(con: duckdb.DuckDBPyConnection, path: Path, header: Header, names: list[str], table: str,
               periods: set[str]) -> None:
    """Stage the chosen sheet's rows below the header; ``periods`` are the period-type column names."""
    _, sheets, _ = _open_book(path, check_only=True)
    part = next(s.part for s in sheets if s.name == header.sheet)
    formula = _formula_cell(path, part)
    if formula:
        letters, row, text = formula
        index = _col_index(letters)
        column = names[index] if 0 <= index < len(names) else None
        raise Unreadable(f"cell {letters}{row} holds a formula (={text[:40]}) where a value is expected: "
                         "paste values only (Paste Special → Values)", row, column)
    width = len(names)
    is_period = [n in periods for n in names]
    sheet = next(s for s in sheets if s.name == header.sheet)

    def rows() -> Iterator[list]:
        for row_no, values in sheet_rows(path, sheet):
            if row_no <= header.row or not _has_data(values):
                continue
            extra = values[width:]
            if _has_data(extra):
                col = width + next(i for i, v in enumerate(extra) if _has_data([v]))
                raise Unreadable(f"a value in column {_letters(col)}, right of the last header column: name "
                                 "the column or delete it", row_no)
            values = values[:width] + [None] * (width - len(values))
            yield [row_no] + [cell_text(v, p) for v, p in zip(values, is_period)]

    _stage_rows(con, rows(), names, table)


def _letters(index: int) -> str:
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def is_xlsx(path: Path) -> bool:
    return path.suffix.lower() == ".xlsx"


def header_of(path: Path, matches) -> Header:
    """The header row of a .csv or .xlsx (for .xlsx, of the sheet it will read)."""
    if is_xlsx(path):
        return xlsx_header(path, choose_sheet(path, matches))
    return csv_header(path)


