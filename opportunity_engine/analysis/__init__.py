"""The analysis: the metric catalogue and the opportunity maths (targets, gaps, £, significance, SPC).

Reads the store; knows nothing of schemes, plans or reports. Every figure on Overview, Explore and Metric
detail is computed in `opportunities.py` (the query) and `maths.py` (the arithmetic).
"""
