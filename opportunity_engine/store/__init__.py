"""The store: the DuckDB schema, the audit trail, and everything that puts data in (importer, templates, facts, unit costs).

The lowest wing: it imports no other wing, so any number can be traced back to the rows it read.
"""
