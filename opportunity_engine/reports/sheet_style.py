"""Finishing touches every sheet of both workbooks gets, so that a file finance sends prints and reads well
in Excel and LibreOffice alike: widths from the content, a bold filled header (LibreOffice does not draw
Excel's table styles), a filter, frozen header, header rows repeated on printed pages.

Kept apart from the builders: they decide what goes in a cell, this decides how a sheet looks.
"""
from __future__ import annotations

from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

NHS_BLUE = "005EB8"
MIN_WIDTH, MAX_WIDTH = 8, 60
FORMULA_WIDTH = 14  # a live £ formula shows as about "£12,345,678"


def style_header(ws: Worksheet, row: int, first_col: int, last_col: int) -> None:
    """Bold white on NHS blue: drawn by every spreadsheet program, unlike a table style."""
    for col in range(first_col, last_col + 1):
        cell = ws.cell(row=row, column=col)
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = PatternFill("solid", fgColor=NHS_BLUE)


def shown_width(value: object, number_format: str) -> int:
    """About how many characters a cell needs on screen (the longest line of a text)."""
    if value is None:
        return 0
    if isinstance(value, str):
        if value.startswith("="):
            return FORMULA_WIDTH
        return max(len(line) for line in value.split("\n"))
    if isinstance(value, bool):
        return 3
    if isinstance(value, (int, float)):
        if "%" in number_format:
            return 7
        text = f"{value:,.2f}" if "0.00" in number_format else f"{value:,.0f}"
        return len(text) + (2 if "£" in number_format else 0)
    return len(str(value))


def fit_columns(ws: Worksheet) -> None:
    """Each column as wide as its widest cell (within limits), ignoring merged notes: a 35-character
    CSU name is read whole, a 300-character description does not push the rest off the page."""
    merged = {cell for rng in ws.merged_cells.ranges for row in ws.iter_rows(
        min_row=rng.min_row, max_row=rng.max_row, min_col=rng.min_col, max_col=rng.max_col) for cell in row}
    widths: dict[int, int] = {}
    for row in ws.iter_rows():
        for cell in row:
            if cell in merged or cell.value is None:
                continue
            bold = 1 if cell.font is not None and cell.font.b else 0
            width = shown_width(cell.value, cell.number_format or "") + bold
            widths[cell.column] = max(widths.get(cell.column, 0), width)
    for col, width in widths.items():
        ws.column_dimensions[get_column_letter(col)].width = max(MIN_WIDTH, min(MAX_WIDTH, width + 2))


def finish_table(ws: Worksheet, header_row: int, last_col: int, last_row: int, freeze_col: str = "A") -> None:
    """Header styled, frozen and printed on every page; a filter unless an Excel table (which has its own)
    already covers the range (two filters on one range make Excel ask to repair the file)."""
    style_header(ws, header_row, 1, last_col)
    ws.freeze_panes = f"{freeze_col}{header_row + 1}"
    ws.print_title_rows = f"{header_row}:{header_row}"
    if not ws.tables:
        ws.auto_filter.ref = f"A{header_row}:{get_column_letter(last_col)}{max(last_row, header_row + 1)}"
