"""The Grid Atlas HTTP API (FastAPI): thin handlers over services in ``gis``."""
