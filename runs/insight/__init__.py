"""Insight into runs (issue #17): pure functions over figures the models already hold.

`breakdown`: where one run's wall time went. `scaling`: the speedup curve of a suite's runs at
several worker counts, an Amdahl fit and a recommended worker count; `scaling_data` gathers
those runs from the database. Pages and the API call these; nothing here changes a row.
"""
