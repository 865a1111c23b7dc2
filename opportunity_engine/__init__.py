"""Opportunity Explorer engine: data, metric catalogue, opportunity maths and exports.

Pure Python over DuckDB. Never imports streamlit: everything the app shows can be reproduced
from Python or from ``python -m opportunity_engine``.
"""

__version__ = "0.1.0"
