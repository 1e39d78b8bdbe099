"""One settings object for the whole system, read from ``GRIDATLAS_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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
    session_hours: float = Field(12.0, description="how long a login token lasts")
    cookie_secure: bool = Field(False, description="mark the session cookie Secure (HTTPS)")

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
