"""Delivery: turning opportunities into schemes, CIP plans, quality impact assessments and realised savings.

Builds on the analysis (a scheme keeps a snapshot of its opportunity) and the store (every edit audited).
"""
