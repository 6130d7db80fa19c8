"""The claim-vs-EXIF policy of a report: compare each photo's capture time and position with what the reporter
claims (where and when), and return advisory :class:`Flag` objects; it never rejects.

Pure (no database, no files): it takes the :class:`gridcity.photos.PhotoInfo` read by the kernel's photo
pipeline (:func:`gridcity.photos.inspect_photo`, or the attachment's stored columns).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

from gridcity.coords import check_lonlat, haversine_m
from gridcity.photos import PhotoInfo

__all__ = ["CHINA_STANDARD_TIME", "Flag", "compare_claim"]

#: Fixed UTC+8 (China has no daylight saving time); the default zone for naive EXIF times.
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")


@dataclass(frozen=True, slots=True)
class Flag:
    """An advisory finding about a photo versus the report it is attached to.

    Attributes:
        code: ``photo.far_from_claim``, ``photo.old``, ``photo.taken_after_claim``,
            ``photo.no_exif_gps`` or ``photo.no_exif_time``.
        message: Human-readable explanation including the distance or the time difference.
        value: Distance in metres (``far_from_claim``) or time difference in seconds (``old``,
            ``taken_after_claim``); None for the ``no_exif_*`` flags.
    """

    code: str
    message: str
    value: float | None = None


def _format_duration(delta: timedelta) -> str:
    minutes = int(abs(delta).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


def compare_claim(
    info: PhotoInfo,
    *,
    claimed_lon: float,
    claimed_lat: float,
    claimed_at: datetime,
    max_distance_m: float = 200.0,
    max_age: timedelta = timedelta(hours=24),
    clock_skew: timedelta = timedelta(minutes=5),
    naive_tz: tzinfo = CHINA_STANDARD_TIME,
) -> list[Flag]:
    """Compare the photo's EXIF time and position with the report it is attached to.

    The result is advisory (for the dispatcher or inspector); nothing is rejected. EXIF can be
    forged, so the absence of flags is no proof either.

    Args:
        info: Result of :func:`gridcity.photos.inspect_photo`.
        claimed_lon: Reported longitude, **WGS-84** (convert GCJ-02 client positions first with
            :func:`gridcity.coords.to_wgs84`).
        claimed_lat: Reported latitude, WGS-84.
        claimed_at: When the report says the problem was observed (or when it was submitted).
        max_distance_m: Largest tolerated distance between EXIF GPS and the claim.
        max_age: Largest tolerated time between capture and ``claimed_at``.
        clock_skew: Capture times up to this much after ``claimed_at`` are tolerated.
        naive_tz: Zone assumed for a naive ``taken_at`` (cameras write local time without an
            offset) and a naive ``claimed_at``; China Standard Time by default.

    Returns:
        Flags, in the order position then time; empty when everything is consistent.

    Raises:
        InvalidInput: ``geo.invalid_coordinates`` for an invalid claimed position.
    """
    claimed_lon, claimed_lat = check_lonlat(claimed_lon, claimed_lat)
    flags: list[Flag] = []
    if info.gps is None:
        flags.append(Flag("photo.no_exif_gps", "the photo has no GPS position in its EXIF data"))
    else:
        distance = haversine_m(info.gps.lon, info.gps.lat, claimed_lon, claimed_lat)
        if distance > max_distance_m:
            flags.append(
                Flag(
                    "photo.far_from_claim",
                    f"the photo was taken {distance:,.0f} m from the reported location "
                    f"(more than {max_distance_m:,.0f} m)",
                    distance,
                )
            )
    if info.taken_at is None:
        flags.append(Flag("photo.no_exif_time", "the photo has no capture time in its EXIF data"))
    else:
        taken = info.taken_at if info.taken_at.tzinfo else info.taken_at.replace(tzinfo=naive_tz)
        claimed = claimed_at if claimed_at.tzinfo else claimed_at.replace(tzinfo=naive_tz)
        age = claimed - taken
        if age > max_age:
            flags.append(
                Flag(
                    "photo.old",
                    f"the photo was taken {_format_duration(age)} before the report "
                    f"(more than {_format_duration(max_age)})",
                    age.total_seconds(),
                )
            )
        elif -age > clock_skew:
            flags.append(
                Flag(
                    "photo.taken_after_claim",
                    f"the photo was taken {_format_duration(age)} after the reported time",
                    (-age).total_seconds(),
                )
            )
    return flags
