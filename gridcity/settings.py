"""Settings from the environment (prefix ``GRIDCITY_``), read once through :func:`get_settings`."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, PrivateAttr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob a deployment may turn. Nothing else reads the environment."""

    model_config = SettingsConfigDict(env_prefix="GRIDCITY_", env_file=".env", extra="ignore")
    _generated_secret: tuple[Path, str] | None = PrivateAttr(default=None)  # (its file, the key) once read

    data_dir: Path = Field(default=Path("data"), description="Local data: SpatiaLite file, media, secret.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means a SpatiaLite file in data_dir."
    )
    secret_key: str | None = Field(default=None, description="JWT signing key; unset means a generated one.")
    token_ttl_minutes: int = 12 * 60
    city_name: str = "宝鸡市"
    city_dir: Path | None = Field(
        default=None, description="Folder with per-city overrides of the shipped standard tables."
    )
    projected_crs: str = Field(
        default="EPSG:4545", description="Metric CRS for distances/areas (CGCS2000 3-degree GK CM 108E)."
    )
    snap_tolerance_m: float = 30.0
    duplicate_radius_m: float = 50.0
    duplicate_days: int = 7
    onsite_radius_m: float = 200.0
    max_upload_bytes: int = 15 * 1024 * 1024
    max_photo_pixels: int = 50_000_000
    open311_api_keys: list[str] = Field(default_factory=lambda: ["demo-open311-key"])
    monitor_interval_seconds: float = Field(
        default=60.0, description="Seconds between deadline-monitor runs; 0 disables the background task."
    )
    max_json_bytes: int = Field(
        default=1024 * 1024, description="Largest non-multipart request body (JSON, form); 413 above it."
    )
    open311_cors_origins: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Origins allowed to call /open311/v2 from a browser (CORS); [] turns CORS off there.",
    )
    open311_generation: str | None = Field(
        default="cjt214",
        pattern="^(cjt214|gbt47678)$",
        description="Which class-code generation Open311 lists as services (one service per class name).",
    )
    db_pool_size: int = Field(
        default=10,
        ge=1,
        description="Pooled connections (plus as many overflow ones) and requests admitted to the "
        "database at a time, on PostGIS and SpatiaLite alike.",
    )
    maintenance_interval_seconds: float = Field(
        default=3600.0,
        description="Seconds between housekeeping runs (orphan photos, old idempotency keys) "
        "inside the server; 0 disables them (run `gridcity maintenance run` instead).",
    )
    login_max_failures_per_account: int = Field(
        default=10, ge=1, description="Failed logins of one account within the window before it answers 429."
    )
    login_max_failures_per_address: int = Field(
        default=50, ge=1, description="Failed logins from one client address within the window before 429."
    )
    login_failure_window_seconds: float = Field(default=900.0, gt=0, description="Window of the two limits above.")
    # The live map's optional external basemap under the city's own base layers (default: none, works offline).
    basemap: str = Field(default="none", description="none | tianditu (needs basemap_key) | custom (basemap_url)")
    basemap_url: str | None = Field(default=None, description="Raster tile URL with {z}/{x}/{y} (custom basemap).")
    basemap_key: str | None = Field(default=None, description="天地图 key (tk) for basemap=tianditu.")
    basemap_gcj02: bool = Field(default=False, description="The custom basemap is in GCJ-02: shift the layers.")
    # Security (issue 15): absolute URLs never come from the request's Host header; what Open311 publishes.
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The server's public origin for absolute URLs (Open311 media_url, discovery); no Host header.",
    )
    open311_publish_after_photos: bool = Field(
        default=False, description="Open311 also serves departments' after-photos (处置后照片) of a request."
    )
    open311_publish_notes: bool = Field(
        default=False, description="Open311 shows staff free-text (void/verify reasons, inspectors' descriptions)."
    )
    sql_echo: bool = False

    @property
    def max_multipart_bytes(self) -> int:
        """Largest multipart body: 18 photos at ``max_upload_bytes`` plus 1 MiB of fields (413 above it)."""
        return self.max_upload_bytes * 18 + 1024 * 1024

    @property
    def media_dir(self) -> Path:
        """Where photos are stored (content-addressed)."""
        return self.data_dir / "media"

    def public_url(self, path: str) -> str:
        """An absolute URL of ``path`` on the configured public origin."""
        return self.public_base_url.rstrip("/") + path

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SpatiaLite file in the data directory."""
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)  # every command may be the first on a fresh machine
        return f"sqlite:///{(self.data_dir / 'gridcity.sqlite').resolve()}"

    def resolved_secret_key(self) -> str:
        """The JWT key: configured, or generated once and kept in the data directory."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        cached = self._generated_secret
        if cached is not None and cached[0] == path:  # every request checks a token: no file read each time
            return cached[1]
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        key = path.read_text().strip()
        self._generated_secret = (path, key)
        return key


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings."""
    return Settings()
