"""One settings object for the whole system, read from ``GRIDATLAS_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Runtime settings; every field can be set as ``GRIDATLAS_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="GRIDATLAS_", extra="ignore")

    env: str = Field("dev", description="dev, test or prod")
    database_url: str | None = Field(
        None, description="PostGIS URL; unset means the project-local cluster under var/pg"
    )
    var_dir: Path = Field(PROJECT_ROOT / "var", description="where the local cluster lives")
    host: str = "127.0.0.1"
    port: int = 8000
    metric_epsg: int | None = Field(
        None, description="projected CRS for lengths and areas; unset derives a UTM zone"
    )
    # Household estimate (docs/households.md): footprint m2 x levels x efficiency / dwelling m2.
    dwelling_m2: float = 70.0
    floor_efficiency: float = 0.75
    min_residential_m2: float = 30.0
    map_feature_limit: int = Field(
        6000, description="most features of each layer one map page embeds (tablets)"
    )
    secret_key: SecretStr | None = Field(
        None,
        description="32+ random bytes, base64 or hex: encrypts ID and phone numbers, keys "
        "their search hashes and derives the app database role's password; unset reads "
        "var/secret.key (made by `gridatlas keygen` or `gridatlas demo`)",
    )
    app_database_url: str | None = Field(
        None,
        description="URL the API connects with (a role that owns no table); unset: the "
        "gridatlas_app role on the same server, its password derived from the secret key",
    )
    replica_url: str | None = Field(
        None,
        description="owner URL of a streaming-replication standby the API sends reads to; "
        "unset: the local replica (`gridatlas db replica up`) when it runs, else none",
    )
    session_hours: float = Field(12.0, description="how long a login token lasts")
    cookie_secure: bool = Field(False, description="mark the session cookie Secure (HTTPS)")
    # `gridatlas serve` behind a reverse proxy (docs/operations.md): the public pages' rate
    # limits key on the client's address, so a forwarded one is believed only from the
    # proxies named here. Default: no proxy is trusted.
    proxy_headers: bool = Field(
        False, description="read X-Forwarded-For/-Proto from the proxies in forwarded_allow_ips"
    )
    forwarded_allow_ips: str = Field(
        "", description="comma-separated addresses of trusted proxies (with proxy_headers)"
    )
    public_base_url: str = Field(
        "",
        description="the address residents open (QR codes of survey sheets), e.g. "
        "https://grid.example.gov.cn; unset: the address of the staff member's request",
    )
    # Basemap under our layers (api/basemap.py, layers/basemap.py). "none" draws only our
    # own streets and buildings and works offline; the others load raster tiles from the
    # named hosts, which the Content-Security-Policy then allows in img-src (nothing else).
    basemap: Literal["none", "xyz", "tianditu", "gaode"] = Field(
        "none",
        description="none (our streets and buildings, offline), xyz (an intranet tile "
        "server: basemap_url), tianditu (天地图, needs tianditu_key) or gaode (高德, GCJ-02: "
        "our layers are shifted to sit on it)",
    )
    basemap_url: str | None = Field(
        None,
        description="XYZ URL template for basemap=xyz, e.g. "
        "https://tiles.intranet.example/{z}/{x}/{y}.png ({s} for basemap_subdomains)",
    )
    basemap_subdomains: str = Field("", description="letters or digits {s} takes, e.g. abc")
    basemap_attribution: str | None = Field(
        None,
        description="credit shown under the basemap (xyz: required by most tile licences; "
        "tianditu/gaode: replaces the built-in credit, e.g. to add the map's 审图号 GS number)",
    )
    tianditu_key: SecretStr | None = Field(
        None, description="天地图 key (tk) for basemap=tianditu, from console.tianditu.gov.cn"
    )
    vector_tiles_above: int = Field(
        3000,
        description="the city map draws buildings as vector tiles (/api/tiles) when the "
        "user's scope holds more buildings than this",
    )
    jobs_every_min: float = Field(
        10.0,
        ge=0,
        description="minutes between the app's passes of its scheduled jobs (overdue "
        "escalation, gis/scheduler.py); 0 turns them off (tests, or cron running `gridatlas "
        "patrol escalate` instead)",
    )
    dask_scheduler: str | None = Field(
        None,
        description="address of an existing Dask scheduler (tcp://host:8786) that "
        "`gridatlas city build` runs on; unset starts a local cluster, one worker per core",
    )
    tile_max_age_s: int = Field(
        60,
        description="how long a browser may reuse a vector tile (Cache-Control: private) "
        "before asking again with its ETag",
    )
    tile_cache_tiles: int = Field(
        20000,
        ge=0,
        description="vector tiles kept in the database's tile cache (the most recently "
        "made; 0 keeps none); an entry whose data has changed is never served",
    )

    @property
    def secret_key_file(self) -> Path:
        return self.var_dir / "secret.key"

    @property
    def pg_dir(self) -> Path:
        return self.var_dir / "pg"


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings (cached; clear with ``get_settings.cache_clear()``)."""
    return Settings()
