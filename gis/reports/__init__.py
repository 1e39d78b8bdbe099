"""Reports: community profiles, classification and norms, computed from the database.

Every figure is computed from stored rows (never typed in) and carries where it came from
(:class:`gis.reports.figures.Figure`). ``classify`` and ``norms`` are pure (easy to test,
read by the star rating later); ``profiles`` and ``indicators`` read PostGIS.
``reference`` holds the seed's Changshou Road tables (``data/reference``).
"""
