"""The phone's small maps: MapLibre over the city's vector tiles, a pin that moves the report, offline fallback;
the map seen online still shows offline (service worker caches per user, bounded, never case tiles), logout."""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gis_data.models import BaseFeature
from gridcity import spatial
from tests.fieldapp.conftest import HERE, M, add_component, choose_photos, jpeg, login, relogin_after_expiry

MAP_READY = "id => document.querySelector(`[data-testid=${id}]`)?.dataset.ready === '1'"


def case_at(db: Any, description: str) -> list[tuple[float, float]]:
    with db.connect() as c:
        return [
            (float(r[0]), float(r[1]))
            for r in c.execute(sa.text('SELECT lon, lat FROM "case" WHERE description = :d'), {"d": description})
        ]


def start_report(page: Any, seed: int) -> None:
    page.get_by_test_id("new-report").click()
    choose_photos(page, "photo-input", [jpeg(seed)])
    page.locator(".thumbs img").first.wait_for()
    page.get_by_test_id("class-search").fill("上水井盖")
    page.get_by_test_id("class-option").filter(has_text="上水井盖").first.click()
    page.get_by_test_id("class-chosen").wait_for()


def drag_pin(page: Any, dx: int, dy: int) -> None:
    box = page.get_by_test_id("map-pin").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y + dy / 2, steps=5)
    page.mouse.move(x + dx, y + dy, steps=5)
    page.mouse.up()


def test_dragging_the_pin_on_the_city_map_moves_the_stored_case(phone, orgdata, city, db):
    page = phone.new_page()
    login(page)
    start_report(page, 600)
    page.wait_for_function(MAP_READY, arg="minimap", timeout=30_000)
    assert page.get_by_test_id("minimap").get_attribute("data-tiles") == "city"  # the app's own style and tiles
    assert page.get_by_test_id("position").inner_text().count("精度") == 1
    drag_pin(page, 80, -40)  # east and north
    page.get_by_test_id("position").filter(has_text="已手动调整位置").wait_for()
    page.get_by_test_id("description").fill("拖动图钉上报")
    page.get_by_test_id("submit-report").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=outbox-item][data-state=sent]') !== null", timeout=60_000
    )
    [(lon, lat)] = case_at(db, "拖动图钉上报")
    # ~1 m per pixel at zoom 17 here: the case is where the pin was dropped, not where the phone is.
    assert 40 / 111_000 < lon - HERE[0] < 160 / 111_000
    assert 15 / 111_000 < lat - HERE[1] < 80 / 111_000


def test_a_slow_first_fix_still_brings_the_map_ahead_when_it_comes(phone, orgdata, city):
    """A cold GPS gives no fix within the 5 s the task list waits for one. The app keeps asking in the background,
    and the fix that comes later starts the pre-cache of the map around the phone (here the data saver stops it at
    once and says so, which is all this test needs to see that it ran)."""
    phone.add_init_script(COLD_GPS)
    phone.add_init_script(SAVE_DATA)
    page = phone.new_page()
    login(page)
    page.wait_for_function(PRECACHE_SKIPPED, timeout=30_000)
    assert page.evaluate("window.__coldTimeouts") >= 1  # the task list's own request did give up first


def test_offline_the_map_falls_back_to_a_bare_style_and_the_pin_still_moves(phone, orgdata, city, db):
    phone.add_init_script(SAVE_DATA)  # no map fetched ahead either: the phone has never had the style
    page = phone.new_page()
    login(page)
    page.wait_for_function(PRECACHE_SKIPPED, timeout=30_000)
    page.evaluate("navigator.serviceWorker.ready")
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=30_000)
    page.reload()  # the shell (with MapLibre) now comes from the service worker
    page.get_by_test_id("tasks").wait_for()
    phone.set_offline(True)
    start_report(page, 601)
    page.wait_for_function(MAP_READY, arg="minimap", timeout=30_000)  # MapLibre and its worker from the cache
    assert page.get_by_test_id("minimap").get_attribute("data-tiles") == "none"
    assert "精度" in page.get_by_test_id("position").inner_text()
    drag_pin(page, -60, 0)
    page.get_by_test_id("position").filter(has_text="已手动调整位置").wait_for()
    page.get_by_test_id("description").fill("离线拖动图钉")
    page.get_by_test_id("submit-report").click()
    page.get_by_test_id("outbox-list").wait_for()
    phone.set_offline(False)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=outbox-item][data-state=sent]') !== null", timeout=60_000
    )
    [(lon, _)] = case_at(db, "离线拖动图钉")
    assert HERE[0] - lon > 30 / 111_000


# ---- the map seen online, offline -------------------------------------------------------------------------

MAP_SETTLED = """id => { const m = document.querySelector(`[data-testid=${id}]`)?.map;
  return !!m && m.loaded() && m.areTilesLoaded() && !m.isMoving(); }"""
RENDERED = """async ([id, layers]) => {
  const m = document.querySelector(`[data-testid=${id}]`).map;
  await new Promise((r) => { m.once('idle', r); m.triggerRepaint(); });
  const present = layers.filter((l) => m.getLayer(l));
  if (!present.length) return [];  // the bare style: none of the city's layers
  return m.queryRenderedFeatures({ layers: present })
    .map((f) => [f.layer.id, String(f.properties.code ?? f.properties.name ?? '')]); }"""
# Every entry of every cache: {cache name: [url, ...]}.
CACHES = """async () => { const out = {};
  for (const name of await caches.keys()) out[name] = (await (await caches.open(name)).keys()).map((r) => r.url);
  return out; }"""
# A message to the active service worker, answered through a MessageChannel.
ASK_WORKER = """async (msg) => { const reg = await navigator.serviceWorker.ready;
  return await new Promise((ok) => { const ch = new MessageChannel(); ch.port1.onmessage = (e) => ok(e.data);
    reg.active.postMessage(msg, [ch.port2]); }); }"""
MAP_LAYERS = ["base-road", "grids-line", "components"]


# The app pre-caches the map around the phone after login (sw.js "precache"): its marker, and the data saver.
PRECACHED = "() => Number(document.documentElement.dataset.precached) > 0"
JUMP = """([id, lon, lat]) => document.querySelector(`[data-testid=${id}]`).map.jumpTo({ center: [lon, lat] })"""
TILE_BOUND = 2700  # what the tile cache keeps after trimming (sw.js DEFAULT_LIMITS.keep)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    r = math.radians(lat)
    return int((lon + 180) / 360 * n), int((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * n)


SAVE_DATA = """Object.defineProperty(Navigator.prototype, 'connection', { configurable: true,
  get: () => ({ saveData: true, effectiveType: '4g', addEventListener() {}, removeEventListener() {} }) });"""
PRECACHE_SKIPPED = "() => document.documentElement.dataset.precacheSkipped === 'save-data'"
# A cold GPS: no fix until 8 s after the page first asks; a request that gives up sooner times out, as a phone's does.
COLD_GPS = """(() => { let first = null; const real = Geolocation.prototype.getCurrentPosition;
  window.__coldTimeouts = 0;
  Geolocation.prototype.getCurrentPosition = function (ok, err, opts) {
    if (first === null) first = Date.now();
    const wait = first + 8000 - Date.now();
    if (wait <= 0) return real.call(this, ok, err, opts);
    if ((opts?.timeout ?? Infinity) < wait) {
      setTimeout(() => { window.__coldTimeouts++; if (err) err({ code: 3, message: "Timeout expired", TIMEOUT: 3 }); },
        opts.timeout);
      return;
    }
    setTimeout(() => real.call(this, ok, err, opts), wait);
  }; })();"""


def add_road(db: Any, name: str, dy_m: float = 0) -> None:
    """A street through the phone's position, or `dy_m` north of it (the base map is public data, imported like
    any base layer)."""
    lat = HERE[1] + dy_m * M
    with Session(db) as s, s.begin():
        s.add(
            BaseFeature(
                layer="road",
                name=name,
                kind="主干路",
                source="test",
                geom=spatial.ewkt(f"LINESTRING({HERE[0] - 0.002} {lat}, {HERE[0] + 0.002} {lat})"),
            )
        )


def controlled(page: Any) -> None:
    """Wait until the service worker controls the page (then it sees the page's and MapLibre's requests)."""
    page.evaluate("navigator.serviceWorker.ready")
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=30_000)


def look_at_the_map(page: Any) -> list[list[str]]:
    """Open the report form, wait for its map to settle, and return what it draws of MAP_LAYERS."""
    page.get_by_test_id("new-report").click()
    page.wait_for_function(MAP_SETTLED, arg="minimap", timeout=60_000)
    drawn: list[list[str]] = page.evaluate(RENDERED, ["minimap", MAP_LAYERS])
    return drawn


def map_caches_of(page: Any, user_id: int) -> dict[str, list[str]]:
    return {k: v for k, v in page.evaluate(CACHES).items() if k.endswith(f"-u{user_id}")}


def test_the_map_seen_online_still_shows_its_streets_grids_and_components_offline(phone, orgdata, city, db):
    add_road(db, "经二路")
    comp = add_component(db, "C0101", 1, 10)
    page = phone.new_page()
    login(page)
    controlled(page)
    online = look_at_the_map(page)
    assert {layer for layer, _ in online} == set(MAP_LAYERS), online
    assert ["base-road", "经二路"] in online and ["components", comp] in online
    assert page.evaluate(ASK_WORKER, {"type": "flush"}) == {"ok": True}  # every answer seen is stored
    phone.set_offline(True)
    page.reload()
    page.get_by_test_id("tasks").wait_for()
    offline = look_at_the_map(page)
    assert page.get_by_test_id("minimap").get_attribute("data-tiles") == "city"  # the cached style, not the bare one
    assert ["base-road", "经二路"] in offline and ["components", comp] in offline
    assert any(layer == "grids-line" for layer, _ in offline)
    phone.set_offline(False)


def test_a_second_user_on_the_phone_does_not_get_the_first_users_map(phone, orgdata, city, db):
    add_road(db, "经三路")
    page = phone.new_page()
    login(page)
    controlled(page)
    assert ["base-road", "经三路"] in look_at_the_map(page)
    page.wait_for_function(PRECACHED, timeout=120_000)  # and the map around the phone, fetched ahead
    page.evaluate(ASK_WORKER, {"type": "flush"})
    first = map_caches_of(page, orgdata.ids["inspector"])
    assert any("/tiles/base/" in u for urls in first.values() for u in urls)
    # The first inspector's login runs out; a colleague logs in on the same phone (no logout in between), with
    # the data saver on: nothing is fetched ahead for them, so offline they have no map of their own.
    page.add_init_script(SAVE_DATA)  # from the next load on
    relogin_after_expiry(page, orgdata, "inspector", "inspector2")
    page.wait_for_function(PRECACHE_SKIPPED, timeout=30_000)
    phone.set_offline(True)
    drawn = look_at_the_map(page)
    # Offline, the colleague's phone has no map of its own yet: the bare style, none of the first user's streets.
    assert page.get_by_test_id("minimap").get_attribute("data-tiles") == "none"
    assert drawn == []
    assert map_caches_of(page, orgdata.ids["inspector2"]) == {}
    assert map_caches_of(page, orgdata.ids["inspector"]) == first  # still there, for its own user only
    phone.set_offline(False)


def test_logout_deletes_the_users_map_caches_and_keeps_the_app_shell(phone, orgdata, city, db):
    page = phone.new_page()
    login(page)
    controlled(page)
    look_at_the_map(page)
    page.wait_for_function(PRECACHED, timeout=120_000)  # the tiles fetched ahead go with the logout too
    page.evaluate(ASK_WORKER, {"type": "flush"})
    uid = orgdata.ids["inspector"]
    assert any("/tiles/" in u for urls in map_caches_of(page, uid).values() for u in urls)
    page.get_by_test_id("logout").click()
    page.get_by_test_id("login-submit").wait_for()
    page.evaluate(ASK_WORKER, {"type": "flush"})
    names = page.evaluate(CACHES)
    assert map_caches_of(page, uid) == {}
    assert any(u.endswith("/m/app.js") for urls in names.values() for u in urls)  # the shell stays
    # Logged out, nothing of the user's is kept for the next one: no session, no cached task list.
    assert page.evaluate(
        """() => new Promise((ok) => { const r = indexedDB.open('chengguantong');
        r.onsuccess = () => { const g = r.result.transaction('meta').objectStore('meta').getAllKeys();
          g.onsuccess = () => ok(g.result); }; })"""
    ) == ["classes", "config"]


FETCH_TILES = """async ([urls, token]) => { const out = [];
  for (const u of urls) out.push((await fetch(u, { headers: { Authorization: `Bearer ${token}` } })).status);
  return out; }"""


def test_the_tile_cache_is_bounded_and_never_holds_case_or_hot_spot_tiles(phone, orgdata, city, db):
    page = phone.new_page()
    login(page)
    controlled(page)
    page.wait_for_function(PRECACHED, timeout=120_000)  # its writes done before the bound is lowered
    assert page.evaluate(ASK_WORKER, {"type": "limits", "max": 12, "keep": 10})["ok"]
    token = page.evaluate(
        """() => new Promise((ok) => { const r = indexedDB.open('chengguantong');
        r.onsuccess = () => { const g = r.result.transaction('meta').objectStore('meta').get('session');
          g.onsuccess = () => ok(g.result.token); }; })"""
    )
    x0, y0 = 104_000, 52_000  # zoom 17 near the test city; empty tiles are tiles too
    base = [f"/tiles/base/17/{x0 + i}/{y0}.mvt" for i in range(20)]
    private = [f"/tiles/{layer}/17/{x0}/{y0 + i}.mvt" for layer in ("cases", "hotspots") for i in range(3)]
    assert page.evaluate(FETCH_TILES, [base[:10] + private + base[10:], token]) == [200] * 26
    page.evaluate(ASK_WORKER, {"type": "flush"})
    tiles = [u for urls in map_caches_of(page, orgdata.ids["inspector"]).values() for u in urls if ".mvt" in u]
    assert 10 <= len(tiles) <= 12  # 20 were fetched; the oldest went
    assert {page.url.split("/m/")[0] + u for u in base[-10:]} <= set(tiles)  # the newest stayed
    assert page.url.split("/m/")[0] + base[0] not in tiles
    everything = [u for urls in page.evaluate(CACHES).values() for u in urls]
    assert not [u for u in everything if "/tiles/cases/" in u or "/tiles/hotspots/" in u]


# ---- the map around the phone, cached ahead ------------------------------------------------------------------


def test_the_map_around_the_phone_is_cached_ahead_and_shows_offline_where_it_was_never_seen(phone, orgdata, city, db):
    far = (HERE[0], HERE[1] + 600 * M)  # 600 m north: never on a screen while online
    add_road(db, "纬六路", dy_m=600)
    comp = add_component(db, "C0101", 7, 600)
    page = phone.new_page()
    login(page)  # online, with a fix: the app asks the service worker to fetch the tiles around the phone
    page.wait_for_function(PRECACHED, timeout=120_000)
    assert page.get_by_test_id("minimap").count() == 0  # no map was opened
    assert page.evaluate(ASK_WORKER, {"type": "flush"}) == {"ok": True}
    uid = orgdata.ids["inspector"]
    tiles = [u for u in map_caches_of(page, uid).get(f"cgt-map-tiles-u{uid}", []) if u.endswith(".mvt")]
    assert int(page.evaluate("document.documentElement.dataset.precached")) == len(tiles)  # nothing was cached before
    assert len(tiles) <= 400 < TILE_BOUND  # a few hundred at most, well within the bound
    x, y = tile_of(*far, 17)
    for layer in ("base", "admin", "grids", "components"):
        assert any(f"/tiles/{layer}/17/{x}/{y}.mvt" in u for u in tiles), layer
    everything = [u for urls in page.evaluate(CACHES).values() for u in urls]
    assert not [u for u in everything if "/tiles/cases/" in u or "/tiles/hotspots/" in u]

    controlled(page)
    phone.set_offline(True)
    page.reload()
    page.get_by_test_id("tasks").wait_for()
    look_at_the_map(page)
    assert page.get_by_test_id("minimap").get_attribute("data-tiles") == "city"  # the style was pre-cached too
    page.evaluate(JUMP, ["minimap", *far])
    page.wait_for_function(MAP_SETTLED, arg="minimap", timeout=60_000)
    drawn = page.evaluate(RENDERED, ["minimap", MAP_LAYERS])
    assert ["base-road", "纬六路"] in drawn and ["components", comp] in drawn, drawn
    phone.set_offline(False)

    # A colleague logs in on the same phone 3 km east: their own pre-cache there, none of the first user's tiles.
    phone.set_geolocation({"longitude": HERE[0] + 3000 * M / math.cos(math.radians(HERE[1])), "latitude": HERE[1]})
    relogin_after_expiry(page, orgdata, "inspector", "inspector2")
    page.wait_for_function(PRECACHED, timeout=120_000)
    page.evaluate(ASK_WORKER, {"type": "flush"})
    uid2 = orgdata.ids["inspector2"]
    theirs = map_caches_of(page, uid2).get(f"cgt-map-tiles-u{uid2}", [])
    assert theirs and not set(theirs) & set(tiles)
    assert {u for u in map_caches_of(page, uid)[f"cgt-map-tiles-u{uid}"] if u.endswith(".mvt")} == set(tiles)
    phone.set_offline(True)
    look_at_the_map(page)
    page.evaluate(JUMP, ["minimap", *far])
    page.wait_for_function(MAP_SETTLED, arg="minimap", timeout=60_000)
    drawn = page.evaluate(RENDERED, ["minimap", MAP_LAYERS])
    assert ["base-road", "纬六路"] not in drawn and ["components", comp] not in drawn, drawn
    phone.set_offline(False)


HAS_TILE = """async ([uid, path]) =>
  !!(await caches.match(new URL(path, location.origin).href, { cacheName: `cgt-map-tiles-u${uid}` }))"""


def test_on_duty_the_map_is_fetched_ahead_again_once_the_phone_has_moved_500_m(phone, orgdata, city, db):
    page = phone.new_page()
    login(page)
    page.wait_for_function(PRECACHED, timeout=120_000)
    uid = orgdata.ids["inspector"]
    east = M / math.cos(math.radians(HERE[1]))  # degrees of longitude per metre here
    x, y = tile_of(HERE[0] + 1700 * east, HERE[1], 17)  # beyond 1 km from the login's fix, within 1 km of 800 m east
    path = f"/tiles/components/17/{x}/{y}.mvt"
    assert not page.evaluate(HAS_TILE, [uid, path])
    page.evaluate("delete document.documentElement.dataset.precached")  # the next pre-cache sets it again
    page.get_by_test_id("duty-toggle").click()
    page.locator("[data-testid=duty-toggle][aria-pressed=true]").wait_for()
    phone.set_geolocation({"longitude": HERE[0] + 800 * east, "latitude": HERE[1], "accuracy": 8})
    page.wait_for_function(PRECACHED, timeout=120_000)
    assert page.evaluate(HAS_TILE, [uid, path])
