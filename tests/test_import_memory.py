"""Bounded memory for a huge .xlsx (issue 14): a small file whose cells inflate to 250 MB of sheet XML
must not need a gigabyte. python-calamine holds every cell of a sheet it reads (0.78 GB peak for
this file when read whole); the importer reads such a sheet in parts (store/readers.py).

The workbook is generated here (30 MB on disk, 850,000 spells), never committed.
"""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAD = ["spell_id", "csu_code", "specialty_code", "admission_date", "discharge_date", "admission_type",
        "bads_eligible", "procedure_date", "readmitted_30d"]
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"


def huge_xlsx(path: Path, sheet_mb: int) -> int:
    """A workbook of spells rows whose sheet XML is ``sheet_mb`` MB (shared strings for the repeated
    text, inline strings for the ids, as exporters write them). Returns the number of data rows."""
    shared = HEAD + ["ABD", "2026-02-02", "2026-02-05", "elective"]
    at = {s: i for i, s in enumerate(shared)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as book:
        xml = '<?xml version="1.0" encoding="UTF-8"?>'
        book.writestr("[Content_Types].xml", xml + (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_CT}.worksheet+xml"/>'
            f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_CT}.sharedStrings+xml"/></Types>'))
        book.writestr("_rels/.rels", xml + (
            f'<Relationships xmlns="{_PKG}"><Relationship Id="rId1" Type="{_REL}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>'))
        book.writestr("xl/workbook.xml", xml + (
            f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><sheets><sheet name="Data" sheetId="1" r:id="rId1"/>'
            '</sheets></workbook>'))
        book.writestr("xl/_rels/workbook.xml.rels", xml + (
            f'<Relationships xmlns="{_PKG}"><Relationship Id="rId1" Type="{_REL}/worksheet" '
            f'Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{_REL}/sharedStrings" '
            'Target="sharedStrings.xml"/></Relationships>'))
        items = "".join(f"<si><t>{s}</t></si>" for s in shared)
        book.writestr("xl/sharedStrings.xml", xml + (
            f'<sst xmlns="{_MAIN}" count="{len(shared)}" uniqueCount="{len(shared)}">{items}</sst>'))
        with book.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
            # A stale stored dimension, as several exporters leave it.
            fh.write(f'{xml}<worksheet xmlns="{_MAIN}"><dimension ref="A1"/><sheetData>'.encode())
            fh.write(('<row r="1">' + "".join(f'<c r="{chr(65 + i)}1" t="s"><v>{at[h]}</v></c>' for i, h in enumerate(HEAD))
                      + "</row>").encode())
            written, r = 0, 1
            while written < sheet_mb * 1_000_000:
                rows = []
                start = r
                for r in range(start + 1, start + 10_001):
                    rows.append(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>X{r}</t></is></c>'
                                f'<c r="B{r}" t="s"><v>{at["ABD"]}</v></c><c r="C{r}"><v>100</v></c>'
                                f'<c r="D{r}" t="s"><v>{at["2026-02-02"]}</v></c><c r="E{r}" t="s"><v>{at["2026-02-05"]}</v></c>'
                                f'<c r="F{r}" t="s"><v>{at["elective"]}</v></c><c r="G{r}"><v>0</v></c>'
                                f'<c r="I{r}"><v>0</v></c></row>')
                data = "".join(rows).encode()
                fh.write(data)
                written += len(data)
            fh.write(b"</sheetData></worksheet>")
    return r - 1


# Imports the file in a process of its own and reports that process's peak resident memory.
_CHILD = """
import json, resource, sys
from opportunity_engine.store import db
from opportunity_engine.store.importer import import_files
with db.connect(sys.argv[1]) as con:
    result = import_files(con, [sys.argv[2]])
    rows = con.execute("SELECT count(*) FROM spells").fetchone()[0]
print(json.dumps({"ok": result.ok, "report": result.report()[:500], "rows": rows,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@pytest.mark.slow
def test_an_xlsx_inflating_to_250_mb_of_cells_loads_in_full_in_bounded_memory(tmp_path):
    from opportunity_engine.store import db
    from opportunity_engine.store.importer import import_files

    (tmp_path / "csus.csv").write_text("csu_code,csu_name\nABD,Abdominal\n")
    (tmp_path / "specialties.csv").write_text("specialty_code,specialty_name,csu_code\n100,General Surgery,ABD\n")
    path, beside = tmp_path / "trust.duckdb", tmp_path / "beside.duckdb"
    for database in (path, beside):
        with db.connect(database) as con:
            assert import_files(con, [tmp_path / "csus.csv", tmp_path / "specialties.csv"]).ok
    workbook = tmp_path / "spells.xlsx"
    rows = huge_xlsx(workbook, 250)
    assert workbook.stat().st_size < 40_000_000  # a small file ...
    with zipfile.ZipFile(workbook) as book:  # ... of 250 MB of cells
        assert book.getinfo("xl/worksheets/sheet1.xml").file_size >= 250_000_000

    out = _import_alone(path, workbook)
    assert out["ok"], out["report"]
    assert out["rows"] == rows  # every row, whatever the stale stored dimension says
    # The same rows as a CSV, imported in a process of its own in the same run: DuckDB's own share of
    # the memory, which varies with the machine (a ratio within one run, not an absolute figure).
    csv = tmp_path / "spells.csv"
    with csv.open("w") as fh:
        fh.write(",".join(HEAD) + "\n")
        fh.writelines(f"X{r},ABD,100,2026-02-02,2026-02-05,elective,0,,0\n" for r in range(2, rows + 2))
    plain = _import_alone(beside, csv)
    assert plain["ok"] and plain["rows"] == rows, plain["report"]
    # Read whole by python-calamine this import peaked at 779 MB (2.3 x the CSV's 343 MB); in parts at
    # 404 MB (1.2 x). 1.6 x fails the old reader; under a gigabyte is what the issue asks.
    assert out["peak_mb"] < 1.6 * plain["peak_mb"] and out["peak_mb"] < 1000, (out, plain)


def _import_alone(database: Path, file: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(database), str(file)], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
