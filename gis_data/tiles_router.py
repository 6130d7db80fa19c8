"""Vector tiles, TileJSON, the MapLibre style and its glyphs, served by the app (no external service needed).

Every tile layer except the base map needs a logged-in user (like ``/api/v1/map/...``); MapLibre sends the
bearer token through ``transformRequest``. The case and hot-spot tiles hold only what the user may see.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Form, Header, Path, Query, Request, Response, UploadFile

from casework import service as casework_service
from gis_data import glyphs, loader, readers, tiles
from gis_data.map_router import legend, read_layer_upload
from gridcity import coords
from gridcity.deps import DbSession, SettingsDep, oauth2_scheme, require_roles, user_from_token
from gridcity.errors import BadRequest
from gridcity.roles import Role
from gridcity.settings import Settings
from gridcity.types import MAX_ID, utcnow

router = APIRouter(tags=["tiles"])
MVT_TYPE = "application/vnd.mapbox-vector-tile"
Token = Annotated[str | None, Depends(oauth2_scheme)]


def setup(app: FastAPI) -> None:
    """One tile cache per app."""
    app.state.tile_cache = tiles.TileCache()


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _gcj02(settings: Settings) -> bool:
    return settings.basemap == "custom" and bool(settings.basemap_url) and settings.basemap_gcj02


def external_basemap(settings: Settings) -> dict[str, Any] | None:
    """The raster source of the configured external basemap, or None (the default: the city's own layers)."""
    if settings.basemap == "tianditu" and settings.basemap_key:
        tk = settings.basemap_key
        wmts = (
            "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
            "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}"
            "&TILECOL={{x}}&tk={tk}"
        )
        # 天地图 is in CGCS2000, which agrees with WGS-84 to centimetres: no shift
        return {
            "tiles": [wmts.format(s=s, layer="vec", tk=tk) for s in range(4)],
            "labels": [wmts.format(s=s, layer="cva", tk=tk) for s in range(4)],
            "attribution": "天地图",
        }
    if settings.basemap == "custom" and settings.basemap_url:
        return {"tiles": [settings.basemap_url], "attribution": "城市底图"}
    return None


# Bounded like every integer a client sends (422 beyond); the tile's own range (z ≤ 22, x/y < 2^z) answers
# tile.out_of_range.
TileInt = Annotated[int, Path(ge=0, le=MAX_ID)]


@router.get("/tiles/style.json", summary="MapLibre style of the live map")
def style_document(
    request: Request, session: DbSession, settings: SettingsDep, lang: Literal["zh", "en"] = "zh"
) -> dict[str, Any]:
    """The style names every tile layer's TileJSON and draws cases by traffic light, components by class."""
    external = external_basemap(settings)
    doc = tiles.style(
        base_url=_base_url(request),
        legend=legend(request.app.state.rules.catalog),
        external=external,
        lang=lang,
        bounds=tiles.city_bounds(session),
    )
    if external and external.get("labels"):
        doc["sources"]["external-labels"] = {"type": "raster", "tiles": external["labels"], "tileSize": 256}
        doc["layers"].insert(2, {"id": "external-labels", "type": "raster", "source": "external-labels"})
    doc["metadata"]["gridcity:gcj02"] = _gcj02(settings)
    if _gcj02(settings):
        # what the page adds to its own WGS-84 points (live cases) and takes off drawn areas, at the city centre
        lon, lat = doc["center"]
        glon, glat = coords.wgs84_to_gcj02(lon, lat)
        doc["metadata"]["gridcity:gcj02_offset"] = [glon - lon, glat - lat]
    return doc


@router.get("/tiles/fonts/{fontstack}/{glyph_range}.pbf", summary="Glyphs (SDF) for the style's labels")
def glyph_range(fontstack: str, glyph_range: str) -> Response:
    """MapLibre's glyph PBF for 256 code points, rendered from the machine's Noto fonts (cached)."""
    try:
        start, end = (int(v) for v in glyph_range.split("-"))
    except ValueError as exc:
        raise BadRequest("range must be like 0-255", code="tile.bad_glyph_range", loc=["path", "glyph_range"]) from exc
    if start % 256 or end != start + 255 or not 0 <= start <= 65280:
        raise BadRequest(
            "range must be a block of 256 code points, like 0-255",
            code="tile.bad_glyph_range",
            loc=["path", "glyph_range"],
        )
    data = glyphs.glyph_pbf(fontstack.split(",")[0][:64], start)
    return Response(data, media_type="application/x-protobuf", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/tiles/{layer}.json", summary="TileJSON of a tile layer")
def tilejson_document(
    request: Request, session: DbSession, settings: SettingsDep, layer: str, lang: Literal["zh", "en"] = "zh"
) -> dict[str, Any]:
    """TileJSON 3.0: tile URL template, zoom range, bounds and the attributes of each MVT layer."""
    info = tiles.check_tile(layer, 0, 0, 0)
    return tiles.tilejson(
        info,
        base_url=_base_url(request),
        bounds=tiles.city_bounds(session),
        lang=lang,
        query="?crs=gcj02" if _gcj02(settings) else "",
    )


@router.get(
    "/tiles/{layer}/{z}/{x}/{y}.mvt",
    summary="A Mapbox Vector Tile",
    response_class=Response,
    responses={200: {"content": {MVT_TYPE: {}}}, 304: {"description": "unchanged"}},
)
def tile(
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    token: Token,
    layer: str,
    z: TileInt,
    x: TileInt,
    y: TileInt,
    crs: Annotated[Literal["wgs84", "gcj02"], Query()] = "wgs84",
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """One tile (empty body for an empty tile). Needs a login except for the base map; cases and hot spots
    hold only the cases the user may see."""
    info = tiles.check_tile(layer, z, x, y)
    actor = None
    if not info.public:
        actor = casework_service.actor_of(user_from_token(session, settings, token))
    data, etag = tiles.get_tile(
        session,
        request.app.state.tile_cache,
        info,
        z,
        x,
        y,
        actor=actor,
        now=utcnow(),
        gcj02=crs == "gcj02",
        if_none_match=if_none_match,
    )
    if info.public:
        cache_control = "public, max-age=300"
    elif info.per_user:
        cache_control = "private, no-cache"
    else:
        cache_control = "private, max-age=60"
    headers = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Authorization"}
    if data is None:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=MVT_TYPE, headers=headers)


@router.post(
    "/api/v1/gis/base/{layer}",
    summary="Import a base-map layer (GeoJSON or zipped Shapefile)",
    dependencies=[require_roles(Role.ADMIN)],
)
def import_base(
    request: Request,
    session: DbSession,
    settings: SettingsDep,
    layer: str,
    file: Annotated[UploadFile, File(description=".geojson / .json, or a .zip Shapefile")],
    crs: Annotated[str, Form(description="EPSG code of the coordinates (a Shapefile's .prj wins)")] = readers.WGS84,
) -> dict[str, Any]:
    """Replace the layer's features from this file; 422 ``gis.load_rejected`` with the report when any is bad."""
    rows = read_layer_upload(
        file,
        settings=settings,
        crs=crs,
        readers_by_suffix={
            ".zip": readers.read_shapefile,
            ".geojson": readers.read_geojson,
            ".json": readers.read_geojson,
        },
    )
    report = loader.load_base_features(session, rows, layer=layer, source=f"import:{file.filename}"[:100], crs=crs)
    session.flush()
    request.app.state.tile_cache.forget_versions()
    return report.to_dict()
