"""A whole city in one command (``gridatlas city build``), on Dask distributed.

``build`` runs the stages and resumes from ``ledger``'s record of finished units;
``work`` holds the tasks the workers run; ``cluster`` opens the Dask client.
See docs/scale.md.
"""
