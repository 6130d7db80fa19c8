"""The field app (城管通) against the phone API it drives, in the same run, on the same photos.

* **submit → stored case** — in Debian's Chromium as a phone (Playwright, Pixel 7 size, touch, geolocation),
  the time from the tap on 提交 to the case row in the database, for ``--submits`` reports of one photo each,
  online; next to the time of one ``POST /mobile/v1/reports`` of the same photo made by a plain HTTP client
  (its physical limit: the request the app makes).
* **outbox drain** — ``--n`` reports (one photo each) are put in the app's outbox while offline (through the
  app's own ``outbox.enqueue``, photos as Blobs in IndexedDB), then the network returns and the time until the
  last is stored gives the drain rate; next to the phone API's own ingest rate for the same reports from one
  sequential HTTP client (the outbox sends one item at a time) and from two.

    .venv/bin/python -m bench.bench_fieldapp                  # SpatiaLite, 100 reports, 10 submits
    .venv/bin/python -m bench.bench_fieldapp --backend postgis --write

Server: ``uvicorn gridcity.asgi:app`` (1 worker) in a subprocess on 127.0.0.1; browser, clients and server share
the machine, so absolute figures are a floor and the ratios are what carries over.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the one HTTP client stack (the one Starlette's TestClient uses)
from PIL import Image

from bench.bench_ingest import TAG, _dms, pct, prepare_database
from bench.perfdoc import write_section
from bench.scratch import free_port, uvicorn_cmd
from gridcity import security

LON, LAT = 107.1448, 34.3693
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/gc_bench_fieldapp"
SECRET = "bench-secret-" + "y" * 40
CHROMIUM = "/usr/bin/chromium"
UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Mobile Safari/537.36"
)


def phone_photo(size: tuple[int, int]) -> bytes:
    """A phone-like JPEG (q92, EXIF time + GPS) whose EXIF Make carries a same-length counter."""
    grad = Image.linear_gradient("L").resize(size)
    im = Image.merge("RGB", (grad, grad.transpose(Image.Transpose.ROTATE_180), Image.effect_noise(size, 40)))
    exif = Image.Exif()
    exif[0x010F] = TAG.decode()
    exif.get_ifd(0x8769)[0x9003] = dt.datetime.now().strftime("%Y:%m:%d %H:%M:%S")
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", _dms(LAT), "E", _dms(LON)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92, exif=exif)
    return buf.getvalue()


def variant(base: bytes, i: int) -> bytes:
    return base.replace(TAG, f"GCFIELD-{i:06d}".encode())


_ENGINES: dict[str, Any] = {}


def count_cases(url: str, like: str) -> int:
    """Cases whose description matches (one engine per URL, so polling costs one query, not a connect)."""
    from gridcity.database import make_engine  # noqa: PLC0415

    engine = _ENGINES.get(url) or _ENGINES.setdefault(url, make_engine(url))
    with engine.connect() as c:
        return int(
            c.exec_driver_sql(
                'SELECT count(*) FROM "case" WHERE description LIKE ?'
                if url.startswith("sqlite")
                else 'SELECT count(*) FROM "case" WHERE description LIKE %s',
                (like,),
            ).scalar_one()
        )


def api_rate(base_url: str, headers: dict[str, str], pics: list[bytes], tag: str, clients: int) -> float:
    """Reports per second of plain HTTP clients posting the reports the app would post."""
    todo = list(enumerate(pics))
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=base_url, timeout=120) as c:
            while True:
                with lock:
                    if not todo:
                        return
                    i, pic = todo.pop()
                report = {
                    "class_code": "C0101",
                    "lon": LON,
                    "lat": LAT,
                    "description": f"{tag}{i}",
                    "captured_at": dt.datetime.now(dt.UTC).isoformat(),
                }
                r = c.post(
                    "/mobile/v1/reports",
                    data={"report": json.dumps(report)},
                    files=[("photos", ("p.jpg", pic, "image/jpeg"))],
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )
                assert r.status_code == 201, r.text[:300]

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(pics) / (time.perf_counter() - t0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="gc-bench-fieldapp-"))
    url, uid = prepare_database(args.backend, data_dir, args.pg_url)
    size = tuple(int(x) for x in args.photo.split("x"))
    base = phone_photo(size)  # type: ignore[arg-type]
    port = free_port()
    env = {
        **os.environ,
        "GRIDCITY_DATA_DIR": str(data_dir),
        "GRIDCITY_DATABASE_URL": url,
        "GRIDCITY_SECRET_KEY": SECRET,
    }
    server = subprocess.Popen(
        uvicorn_cmd("gridcity.asgi:app", port),
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {
        "backend": args.backend,
        "n": args.n,
        "submits": args.submits,
        "photo": args.photo,
        "photo_mb": len(base) / 1e6,
    }
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        token = security.create_token(user_id=uid, role="inspector", secret=SECRET, ttl=dt.timedelta(hours=2))
        headers = {"Authorization": f"Bearer {token}"}
        seq = iter(range(10**6))
        # Warm-up of the server (imports, first statements).
        api_rate(base_url, headers, [variant(base, next(seq)) for _ in range(3)], "warm", 1)

        # --- the phone API alone: single requests and the ingest rate, 1 and 2 clients ---
        single = []
        with httpx.Client(base_url=base_url, timeout=120) as c:
            for _ in range(args.submits):
                report = {
                    "class_code": "C0101",
                    "lon": LON,
                    "lat": LAT,
                    "description": "api-single",
                    "captured_at": dt.datetime.now(dt.UTC).isoformat(),
                }
                t0 = time.perf_counter()
                r = c.post(
                    "/mobile/v1/reports",
                    data={"report": json.dumps(report)},
                    files=[("photos", ("p.jpg", variant(base, next(seq)), "image/jpeg"))],
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                )
                single.append(time.perf_counter() - t0)
                assert r.status_code == 201
        api_1 = api_rate(base_url, headers, [variant(base, next(seq)) for _ in range(args.n)], "api1-", 1)
        api_2 = api_rate(base_url, headers, [variant(base, next(seq)) for _ in range(args.n)], "api2-", 2)

        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
            )
            ctx = browser.new_context(
                viewport={"width": 412, "height": 839},
                device_scale_factor=2.625,
                is_mobile=True,
                has_touch=True,
                user_agent=UA,
                locale="zh-CN",
                geolocation={"longitude": LON, "latitude": LAT, "accuracy": 8},
                permissions=["geolocation"],
                base_url=base_url,
            )
            page = ctx.new_page()
            page.goto("/m/")
            page.get_by_test_id("login-username").fill("bench-inspector")
            page.get_by_test_id("login-password").fill("bench-password")
            page.get_by_test_id("login-submit").click()
            page.get_by_test_id("tasks").wait_for()
            page.evaluate("navigator.serviceWorker.ready")

            # --- submit → stored case, through the UI ---
            photo_path = data_dir / "photo.jpg"
            submit_times = []
            for i in range(args.submits):
                photo_path.write_bytes(variant(base, next(seq)))
                page.get_by_test_id("new-report").click()
                page.get_by_test_id("photo-input").set_input_files(str(photo_path))
                page.locator(".thumbs img").first.wait_for()
                page.get_by_test_id("class-search").fill("上水井盖")
                page.get_by_test_id("class-option").first.click()
                page.get_by_test_id("description").fill(f"ui-{i}")
                page.get_by_test_id("position").filter(has_text="精度").wait_for()
                t0 = time.perf_counter()
                page.get_by_test_id("submit-report").click()
                while count_cases(url, f"ui-{i}") == 0:
                    time.sleep(0.01)
                submit_times.append(time.perf_counter() - t0)

            # --- a 100-report outbox drained after the network returns ---
            ctx.set_offline(True)
            page.evaluate(
                """async (args) => {
                const outbox = await import('/m/outbox.js');
                const store = await import('/m/store.js');
                const [n, b64, lon, lat] = args;
                const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                for (let i = 0; i < n; i++) {
                  const key = store.newKey();
                  // a distinct photo per report: the same-length counter in the EXIF Make
                  const copy = bytes.slice();
                  const tag = new TextEncoder().encode('GCDRAIN-' + String(i).padStart(6, '0'));
                  const at = copy.findIndex((v, j) => v === 71 && copy[j + 1] === 67 && copy[j + 2] === 66);
                  copy.set(tag, at);
                  await outbox.enqueue({ id: key, key, kind: 'report', path: '/mobile/v1/reports', field: 'report',
                    payload: { class_code: 'C0101', lon, lat, coord_system: 'wgs84', description: 'drain-' + i,
                               urgency: 'normal', captured_at: new Date().toISOString(), self_handled: false },
                    files: { photos: [new File([copy], 'IMG_' + i + '.jpg', { type: 'image/jpeg' })] },
                    summary: 'bench ' + i });
                }
            }""",
                [args.n, base64.b64encode(base).decode(), LON, LAT],
            )
            page.get_by_test_id("outbox").click()
            t0 = time.perf_counter()
            ctx.set_offline(False)
            while count_cases(url, "drain-%") < args.n:
                time.sleep(0.05)
            drain = time.perf_counter() - t0
            page.wait_for_timeout(500)
            assert count_cases(url, "drain-%") == args.n
            ctx.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        for engine in _ENGINES.values():
            engine.dispose()
    out.update(
        {
            "single_p50": pct(single, 0.5) * 1e3,
            "single_mean": statistics.mean(single) * 1e3,
            "submit_p50": pct(submit_times, 0.5) * 1e3,
            "submit_mean": statistics.mean(submit_times) * 1e3,
            "submit_max": max(submit_times) * 1e3,
            "api_1": api_1,
            "api_2": api_2,
            "drain_rate": args.n / drain,
            "drain_s": drain,
            "load": (load_before, os.getloadavg()[0]),
        }
    )
    return out


def section(r: dict[str, Any], cmd: str) -> str:
    """The docs/performance.md section."""
    submit = f"p50 **{r['submit_p50']:.0f} ms**, mean {r['submit_mean']:.0f}, max {r['submit_max']:.0f} ms"
    single = f"p50 {r['single_p50']:.0f} ms, mean {r['single_mean']:.0f} ms"
    drain = f"**{r['drain_rate']:.1f} reports/s** ({r['drain_s']:.1f} s)"
    api = f"{r['api_1']:.1f} / {r['api_2']:.1f} reports/s"
    ratio = r["drain_rate"] / r["api_1"]
    return f"""## Field app 城管通: submit → stored case, outbox drain ({r["backend"]})

`{cmd}`
— {dt.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()};
1-min load average {r["load"][0]:.1f} before / {r["load"][1]:.1f} after. Debian's Chromium as a phone
(412×839, touch, geolocation) on `/m/`, uvicorn (1 worker) on 127.0.0.1, {r["backend"]} database; one
{r["photo"]} JPEG ({r["photo_mb"]:.2f} MB, EXIF time + GPS) per report, sent as taken. Browser, HTTP clients and
server share the machine.

| what | figure |
|---|---|
| tap on 提交 → case row stored, online ({r["submits"]} reports) | {submit} |
| limit: one `POST /mobile/v1/reports` of the same photo from a plain HTTP client | {single} |
| outbox of {r["n"]} reports drained after the network returns | {drain} |
| limit: the phone API's own ingest, 1 sequential client / 2 clients | {api} |
| **ratio** drain / API ingest (1 client; the outbox sends one item at a time) | **{ratio:.2f}** |

Reading: the submit time includes storing the report in IndexedDB (photo as a Blob), reading it back,
building the multipart body and the upload with progress events, then the server's ingest; the difference to
the plain request is the app's own cost. The outbox sends one item at a time (a phone on 4G should not split its
uplink), so its ceiling is the single-client API rate.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["spatialite", "postgis"], default="spatialite")
    ap.add_argument("--n", type=int, default=100, help="reports in the outbox (and per API rate run)")
    ap.add_argument("--submits", type=int, default=10, help="reports submitted through the UI, online")
    ap.add_argument("--photo", default="2000x1500", help="photo size WxH (4000x3000 is a 12 MP phone photo)")
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument("--write", action="store_true", help="write the section into docs/performance.md")
    args = ap.parse_args()
    r = run(args)
    cmd = (
        f".venv/bin/python -m bench.bench_fieldapp --backend {args.backend} --n {args.n} "
        f"--submits {args.submits} --photo {args.photo} --write"
    )
    text = section(r, cmd)
    print(text)
    if args.write:
        write_section("bench_fieldapp" if args.backend == "spatialite" else f"bench_fieldapp_{args.backend}", text)


if __name__ == "__main__":
    main()
