"""A photo as a report or a workflow step sends it: checked by its content, stripped of its metadata, thumbnailed.

What a client says about a file (its name, its ``Content-Type``) is never believed: Pillow opens the bytes with
only the JPEG, PNG and WebP decoders, the header's dimensions are checked before any pixel is decoded (a
decompression bomb is a small file announcing a huge image), ``verify`` and a full decode must pass (a truncated
file fails), and what is stored is the decoded pixels encoded again: EXIF (GPS included), XMP, ICC profiles,
comments and anything appended to the file (a polyglot's second half) are gone. The orientation EXIF asked for is
applied to the pixels first, and a colour profile is converted to sRGB before it is dropped. The GPS position EXIF
carried is kept apart, as WGS84 lon/lat.

Pure functions over bytes: no database, no file system.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from typing import Any

from PIL import ExifTags, Image, ImageCms, ImageOps

from citygrid.errors import InvalidInput, TooLarge

# Each evidence event (a report, a workflow step, an ``add_photos``) carries at most this many photos.
MAX_PHOTOS = 10
MAX_PHOTO_BYTES = 10 * 1024 * 1024
# Decoding costs about 4 bytes a pixel: 50 megapixels (a 200 MB decode) is above any phone camera's default
# output and well below Pillow's own bomb limit (89 M), so Pillow never decodes what this refuses.
MAX_PIXELS = 50_000_000
MAX_SIDE = 20_000
# A stored photo is at most this many pixels on its long side: evidence needs no more, and it bounds the
# storage and the memory every later read of it costs.
STORED_SIDE = 4096
THUMB_SIDE = 320
# A photo whose EXIF position is farther than this from the case's point gets a warning (metres, measured in
# the deployment's projected CRS).
GPS_WARNING_M = 200.0

# Pillow format -> (Content-Type, file extension); the only formats accepted.
FORMATS: dict[str, tuple[str, str]] = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"),
                                       "WEBP": ("image/webp", "webp")}
EXTENSIONS: dict[str, str] = {content_type: ext for content_type, ext in FORMATS.values()}
_SAVE: dict[str, dict[str, Any]] = {"JPEG": {"quality": 88}, "PNG": {"compress_level": 6},
                                    "WEBP": {"quality": 88, "method": 4}}


@dataclass(frozen=True)
class CheckedPhoto:
    """A photo that passed every check, as it will be stored.

    Attributes
    ----------
    data, sha256 : the re-encoded file (no metadata) and its content hash (the name it is stored under).
    thumb, thumb_sha256 : a JPEG at most ``THUMB_SIDE`` pixels on its long side, and its hash.
    content_type, ext : of the verified format (``image/jpeg`` / ``jpg`` …).
    width, height : of the stored image, orientation applied.
    gps : (lon, lat) in WGS84 from the original's EXIF, None when it had none or nonsense.
    """

    data: bytes
    sha256: str
    thumb: bytes
    thumb_sha256: str
    content_type: str
    ext: str
    width: int
    height: int
    gps: tuple[float, float] | None


def check_photo(data: bytes, part: str) -> CheckedPhoto:
    """Check one uploaded file by its content and prepare it for storage.

    Parameters
    ----------
    data : the file's bytes as received.
    part : how the request named it (``photo[2]``), for the error's field.

    Returns
    -------
    The ``CheckedPhoto``: re-encoded, metadata stripped, with its thumbnail and the EXIF GPS position.

    Raises
    ------
    TooLarge (413) over ``MAX_PHOTO_BYTES``; InvalidInput (400, field ``part``) for an empty file, a file that
    is not a JPEG, PNG or WebP image (whatever its name says), a truncated or damaged one, or dimensions over
    ``MAX_SIDE`` / ``MAX_PIXELS``.
    """
    if len(data) > MAX_PHOTO_BYTES:
        raise TooLarge(f"{part} is {len(data):,} bytes; a photo may have at most {MAX_PHOTO_BYTES:,} bytes "
                       f"({MAX_PHOTO_BYTES // (1024 * 1024)} MiB)", field=part)
    if not data:
        raise InvalidInput(f"{part} is an empty file", field=part)
    fmt, gps, image = _decode(data, part)
    image = _normalised(image)
    stored = _encode(image, fmt)
    thumb = _thumbnail(image)
    content_type, ext = FORMATS[fmt]
    return CheckedPhoto(data=stored, sha256=hashlib.sha256(stored).hexdigest(), thumb=thumb,
                        thumb_sha256=hashlib.sha256(thumb).hexdigest(), content_type=content_type, ext=ext,
                        width=image.width, height=image.height, gps=gps)


def _decode(data: bytes, part: str) -> tuple[str, tuple[float, float] | None, Image.Image]:
    """(format, EXIF GPS, the decoded first frame) of ``data``; ``InvalidInput`` naming ``part`` otherwise.

    Pillow's decoders raise many kinds of exception on hostile bytes (OSError, ValueError, SyntaxError,
    struct.error, EOFError, DecompressionBombError…); every one of them means the same thing here."""
    fmt = _header(data, part)
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as probe:
            probe.verify()
        image = Image.open(io.BytesIO(data), formats=[fmt])
        gps = _gps_of_image(image)
        if fmt == "JPEG":  # decode straight at the scale stored (libjpeg's DCT scaling): a fraction of the memory
            image.draft("RGB", (STORED_SIDE, STORED_SIDE))
        image.load()
    except Exception as exc:  # see the docstring
        raise InvalidInput(f"{part} is a damaged or truncated {fmt} image ({_reason(exc)})", field=part) from None
    return fmt, gps, image


def _header(data: bytes, part: str) -> str:
    """The format and checked dimensions of ``data`` from its header alone (no pixel decoded)."""
    try:
        with Image.open(io.BytesIO(data), formats=list(FORMATS)) as probe:
            fmt, (width, height) = str(probe.format), probe.size
    except Image.DecompressionBombError:
        raise InvalidInput(f"{part} announces more than {MAX_PIXELS:,} pixels", field=part) from None
    except Exception:  # no accepted decoder recognises it (PDF, HTML, SVG, GIF, zip…)
        raise InvalidInput(f"{part} is not a JPEG, PNG or WebP image (checked by its content, not its name "
                           f"or Content-Type)", field=part) from None
    if fmt not in FORMATS:
        raise InvalidInput(f"{part} is a {fmt} image; send JPEG, PNG or WebP", field=part)
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or width * height > MAX_PIXELS:
        raise InvalidInput(f"{part} is {width} x {height} pixels; a photo may be at most {MAX_SIDE} pixels a side "
                           f"and {MAX_PIXELS:,} pixels in all", field=part)
    return fmt


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    return text.replace("\x00", "")


def _normalised(image: Image.Image) -> Image.Image:
    """The image upright (EXIF orientation applied), in sRGB, RGB or RGBA, at most ``STORED_SIDE`` pixels on its
    long side, with no metadata left in ``info``."""
    if image.mode in ("RGB", "RGBA", "L") and max(image.size) > STORED_SIDE:
        # Made small first, in place: each step below copies the whole image, and copies of a 50-megapixel
        # PNG or WebP (a few kB can announce that) would take several times its 200 MB decode.
        image.thumbnail((STORED_SIDE, STORED_SIDE), Image.Resampling.LANCZOS)
    upright = ImageOps.exif_transpose(image) or image
    alpha = upright.mode in ("RGBA", "LA", "PA") or upright.has_transparency_data
    mode = "RGBA" if alpha else "RGB"
    converted = _to_srgb(upright, mode)
    if max(converted.size) > STORED_SIDE:
        converted.thumbnail((STORED_SIDE, STORED_SIDE), Image.Resampling.LANCZOS)
    converted.info = {}
    return converted


def _to_srgb(image: Image.Image, mode: str) -> Image.Image:
    """``image`` in ``mode``, its embedded colour profile (if any, and if usable) converted to sRGB first, so the
    colours survive dropping the profile."""
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"),
                                                  outputMode="RGBA" if image.mode == "RGBA" else "RGB")
            if converted is not None:
                return converted.convert(mode)
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a profile littleCMS cannot use: the pixels as they are
    return image.convert(mode)


def _encode(image: Image.Image, fmt: str) -> bytes:
    """``image`` encoded as ``fmt`` with nothing but its pixels (JPEG has no alpha: flattened onto white)."""
    if fmt == "JPEG" and image.mode != "RGB":
        image = _flattened(image)
    out = io.BytesIO()
    image.save(out, format=fmt, **_SAVE[fmt])
    return out.getvalue()


def _flattened(image: Image.Image) -> Image.Image:
    """An RGB copy of an RGBA image over a white background."""
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.getchannel("A") if image.mode == "RGBA" else None)
    return background


def _thumbnail(image: Image.Image) -> bytes:
    """A JPEG at most ``THUMB_SIDE`` pixels on its long side."""
    small = image.copy()
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    small.info = {}
    return _encode(small if small.mode == "RGB" else _flattened(small), "JPEG")


# ------------------------------------------------------------------------------------------ GPS
def _gps_of_image(image: Image.Image) -> tuple[float, float] | None:
    """``gps_of`` the image's EXIF; None when the EXIF block itself cannot be read (the pixels may still be fine:
    a damaged EXIF costs the position, not the photo)."""
    try:
        exif = image.getexif()
    except Exception:  # Pillow's TIFF reader raises many kinds on a damaged block
        return None
    return gps_of(exif)


def gps_of(exif: Image.Exif) -> tuple[float, float] | None:
    """(lon, lat) in WGS84 from EXIF's GPSInfo (degrees, minutes, seconds as rationals, with their N/S and E/W
    references); None when there is none or it is nonsense (missing reference, zero denominator, minutes or
    seconds of 60 or more, out of range, or exactly 0, 0: a receiver without a fix).

    >>> exif = Image.Exif()
    >>> gps_of(exif) is None
    True
    """
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # a damaged GPS IFD is as good as none
        return None
    lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "NS", 90.0)
    lon = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "EW", 180.0)
    if lat is None or lon is None or (lat == 0.0 and lon == 0.0):
        return None
    return lon, lat


def _degrees(value: Any, ref: Any, refs: str, limit: float) -> float | None:
    """Signed decimal degrees from EXIF's (degrees, minutes, seconds) and its reference letter, or None.

    >>> _degrees((39, 54, 36), "N", "NS", 90.0)
    39.91
    >>> _degrees((116, 30, 0), "W", "EW", 180.0)
    -116.5
    >>> _degrees((39, 61, 0), "N", "NS", 90.0) is None
    True
    """
    letter = (ref.decode("ascii", "replace") if isinstance(ref, bytes) else str(ref or "")).strip("\x00 ").upper()
    if len(letter) != 1 or letter not in refs or not isinstance(value, tuple | list) or not 1 <= len(value) <= 3:
        return None
    parts = [_number(v) for v in value] + [0.0] * (3 - len(value))
    if any(p is None or not math.isfinite(p) or p < 0 for p in parts):
        return None
    degrees, minutes, seconds = parts  # type: ignore[misc]
    if minutes >= 60 or seconds >= 60:
        return None
    total = degrees + minutes / 60 + seconds / 3600
    if total > limit:
        return None
    return round(-total if letter == refs[1] else total, 7)


def _number(value: Any) -> float | None:
    """A rational of EXIF (``IFDRational``, a number, or a (numerator, denominator) pair) as a float, or None."""
    if isinstance(value, tuple) and len(value) == 2:
        numerator, denominator = value
        return None if not denominator else _number(numerator / denominator) if isinstance(
            numerator, int | float) and isinstance(denominator, int | float) else None
    try:
        return float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None


def distance_warning(distance_m: float | None) -> str | None:
    """The warning a photo gets when its EXIF position is farther than ``GPS_WARNING_M`` from the case's point
    (``distance_m``: metres in the deployment CRS), else None.

    >>> distance_warning(812.4)
    'the photo was taken 812 m from the case (its GPS position); check that it shows this case'
    >>> distance_warning(30.0) is None
    True
    """
    if distance_m is None or distance_m <= GPS_WARNING_M:
        return None
    return f"the photo was taken {distance_m:.0f} m from the case (its GPS position); check that it shows this case"
