"""Frame times of the console's live map in Chromium: a scripted pan and zoom across the whole demo city with
every layer on, against the same camera script on an empty style (background only) in the same browser — the
renderer's own floor on this machine (headless Chromium renders WebGL in software, SwiftShader).

    .venv/bin/python -m bench.bench_map_browser --scale 1 --write

The demo city is loaded into a scratch SpatiaLite file (``--scale``), with ``--cases`` open cases; ``--reuse``
takes the one ``bench.bench_tiles`` loaded (same scale and cases) instead of loading it again. A breakdown
pass hides one group of style layers at a time (the same script), so the cost of each group shows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from bench.bench_tiles import load_backend, pct
from bench.perfdoc import write_section
from bench.scratch import free_port
from gis_data import demo_city, tiles
from gridcity.database import make_engine, make_session_factory
from gridcity.settings import Settings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

# A camera script over the city: (lon fraction, lat fraction, zoom, duration ms), flown one after the other.
SCRIPT = [
    (0.5, 0.5, 12.5, 800),
    (0.2, 0.8, 14, 1500),
    (0.8, 0.8, 15, 1500),
    (0.8, 0.2, 16, 1500),
    (0.3, 0.3, 17, 1500),
    (0.5, 0.5, 13, 1500),
    (0.1, 0.1, 15.5, 1500),
    (0.9, 0.9, 16.5, 2000),
]

RUN_JS = """async ([script, bounds]) => {
  const m = App.map;
  const frames = [];
  let last = performance.now(), on = true;
  const tick = (t) => { frames.push(t - last); last = t; if (on) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  for (const [fx, fy, z, ms] of script) {
    const c = [bounds[0] + fx * (bounds[2] - bounds[0]), bounds[1] + fy * (bounds[3] - bounds[1])];
    await new Promise((r) => { m.once('moveend', r); m.flyTo({center: c, zoom: z, duration: ms, essential: true}); });
    await new Promise((r) => setTimeout(r, 150));
  }
  on = false;
  return frames.slice(2);
}"""


# Groups of style layers (by id), hidden one at a time in the breakdown.
GROUPS = [
    ("labels", "label|count$"),
    ("heat map", "^heat$"),
    ("components", "^components"),
    ("base map", "^base-"),
    ("grids and areas", "^(grids|admin)-"),
    ("cases", "^(live-)?cases"),
]
HIDE_JS = """(hidden) => { const m = App.map, re = hidden ? new RegExp(hidden) : null;
  for (const l of m.getStyle().layers)
    m.setLayoutProperty(l.id, 'visibility', re && l.id !== 'background' && re.test(l.id) ? 'none' : 'visible'); }"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="the SpatiaLite city bench.bench_tiles loaded, if any")
    ap.add_argument("--flights", type=int, default=len(SCRIPT), help="fly only the first N moves of the script")
    ap.add_argument("--no-breakdown", action="store_true", help="only every layer and the floor (a quick check)")
    a = ap.parse_args()
    script = SCRIPT[: max(1, a.flights)]
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    from gridcity.root.app import create_app  # noqa: PLC0415

    tmp = Path(tempfile.mkdtemp())
    url, _, _ = load_backend("spatialite", a.scale, a.cases, "", reuse=a.reuse)
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        bounds = tiles.city_bounds(s)
    assert bounds is not None
    engine.dispose()
    load_start = os.getloadavg()[0]
    app = create_app(
        Settings(database_url=url, data_dir=tmp / "data", secret_key="bench-" + "x" * 40, monitor_interval_seconds=0)
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, ws="websockets-sansio")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    results: dict[str, list[float]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/console/#map")
            page.fill("#login-form input[name=username]", "leader")
            page.fill("#login-form input[name=password]", demo_city.DEMO_PASSWORD)
            page.click("#login-form button[type=submit]")
            page.click("#nav a[data-view=map]")
            page.wait_for_selector("#map[data-ready='1']", timeout=120_000)
            for box in page.locator("#map-layers input[type=checkbox]").all():
                if not box.is_checked():
                    box.check()
            page.wait_for_function("() => App.map.loaded() && App.map.areTilesLoaded()", timeout=120_000)
            # one warm-up pass fills the tile caches (server and browser); the second pass is measured
            page.evaluate(RUN_JS, [script, list(bounds)])
            results["all layers"] = page.evaluate(RUN_JS, [script, list(bounds)])
            for name, pattern in [] if a.no_breakdown else GROUPS:
                page.evaluate(HIDE_JS, pattern)
                results[f"without {name}"] = page.evaluate(RUN_JS, [script, list(bounds)])
            page.evaluate(HIDE_JS, ".")
            results["empty style (floor)"] = page.evaluate(RUN_JS, [script, list(bounds)])
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        app.state.engine.dispose()
    lines = [
        f"## Live map in Chromium: frame times of a scripted pan and zoom (demo city × {a.scale:g})",
        "",
        f"`.venv/bin/python -m bench.bench_map_browser --scale {a.scale:g}{' --reuse' if a.reuse else ''}"
        f"{f' --flights {len(script)}' if len(script) < len(SCRIPT) else ''}"
        f"{' --no-breakdown' if a.no_breakdown else ''} --write` — "
        f"{platform.processor() or platform.machine()}, {dt.date.today().isoformat()}, headless Debian Chromium "
        f"(WebGL in software: SwiftShader), 1400×900. {len(script)} `flyTo`s across the city from zoom 12.5 to 17 with "
        f"every layer on ({a.cases:,} open cases), measured on the second pass (tiles cached); the floor is the "
        'same script with every layer hidden (background only), in the same page; each "without" row hides '
        "one group of style layers. 1-min load average of the machine (2 CPUs, shared) "
        f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| run | frames | p50 ms | p95 ms | p99 ms | max ms | mean fps |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, frames in results.items():
        lines.append(
            f"| {name} | {len(frames)} | {pct(frames, 0.5):.1f} | {pct(frames, 0.95):.1f} | "
            f"{pct(frames, 0.99):.1f} | {max(frames):.1f} | {1000 / statistics.mean(frames):.1f} |"
        )
    a_p50 = pct(results["all layers"], 0.5)
    f_p50 = pct(results["empty style (floor)"], 0.5)
    lines += ["", f"Median frame with every layer on / floor: {a_p50 / f_p50:.2f}×.", ""]
    text = "\n".join(lines)
    print(text)
    if a.write:
        write_section(f"bench_map_browser_{a.scale:g}", text)


if __name__ == "__main__":
    main()
