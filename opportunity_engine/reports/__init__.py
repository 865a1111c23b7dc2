"""Reports: what leaves the tool or explains it: the two Excel workbooks, the Guide's worked examples and the
page-shaped views (heatmap, windows) that pages render as they are.
"""
