"""Photos of problems: checked from their bytes, stripped of EXIF, kept outside public paths.

A photo is accepted when its first bytes are a JPEG, PNG or WebP signature (the name and the
client's content type are not trusted) and Pillow decodes it as that format, up to
``MAX_BYTES`` and ``MAX_PIXELS``. It is then decoded and encoded again with its orientation
applied and **no metadata at all** — EXIF (GPS position, device, time), XMP, comments, ICC —
so a photo taken in a stairwell does not carry where and by whom.

The stored file is ``<photos dir>/p<problem>/<sha256 of the stored bytes>`` with mode 0600,
in a directory of mode 0700 under the settings' ``var_dir`` (never under ``web/``, which is
served). The same photo sent again for the same problem (an offline queue synced twice) is
the same file and the same row. The file is written before the row; a request rolled back
leaves at most a file no row names (its retry reuses it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy.engine import Connection

from gis import permissions
from gis.audit import Who
from gis.errors import Conflict, InvalidInput, NotFound, TooLarge
from gis.patrol.checkins import PATROL

MAX_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; more is a decompression bomb, not a photo
MAX_PER_PROBLEM = 12
JPEG_QUALITY = 88
FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}  # Pillow's names


def sniff(data: bytes) -> str | None:
    """The media type named by the file's signature (magic number), or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _refuse_type() -> InvalidInput:
    return InvalidInput(
        "the file is not a JPEG, PNG or WebP photo (checked from its content, not its name)",
        key="problems.photo_type",
    )


def _decode(data: bytes, media_type: str) -> Image.Image:
    """The photo's first frame, decoded, with its EXIF orientation applied."""
    fmt = FORMATS[media_type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise InvalidInput(
                    f"the photo has {width}×{height} pixels; at most {MAX_PIXELS // 1_000_000} "
                    "megapixels are accepted",
                    key="problems.photo_pixels",
                    megapixels=MAX_PIXELS // 1_000_000,
                )
            img.load()
            upright = ImageOps.exif_transpose(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as err:  # fmt: skip
        raise _refuse_type() from err
    return upright if upright is not None else img


def clean(data: bytes) -> tuple[bytes, str]:
    """(the photo encoded again without any metadata, its media type); 413 or 422 refused."""
    if len(data) > MAX_BYTES:
        raise TooLarge(
            f"the photo is larger than {MAX_BYTES // (1024 * 1024)} MB; send a smaller one",
            key="problems.photo_too_large",
            mb=MAX_BYTES // (1024 * 1024),
        )
    if not data:
        raise InvalidInput("the file is empty", key="problems.photo_empty")
    media_type = sniff(data)
    if media_type is None:
        raise _refuse_type()
    img = _decode(data, media_type)
    fmt = FORMATS[media_type]
    # A fresh image from the pixels alone: nothing of the original's info (exif, xmp, icc,
    # comments, text chunks) can travel with it, whatever the encoder would copy.
    if img.mode == "P":
        img = img.convert("RGBA")
    if fmt == "JPEG" and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    bare = Image.frombytes(img.mode, img.size, img.tobytes())
    out = io.BytesIO()
    if fmt == "JPEG":
        bare.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    elif fmt == "PNG":
        bare.save(out, "PNG", optimize=True)
    else:
        bare.save(out, "WEBP", quality=JPEG_QUALITY)
    return out.getvalue(), media_type


def _write_private(root: Path, relative: str, data: bytes) -> None:
    """Write ``data`` to ``root/relative`` (0600, directories 0700), atomically."""
    target = root / relative
    for d in (root, target.parent):
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    if target.exists():
        return  # content-addressed: the same name holds the same bytes
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _row(r: Any) -> dict[str, Any]:
    return {
        "id": int(r.id),
        "problem_id": int(r.problem_id),
        "media_type": r.media_type,
        "bytes": int(r.bytes),
        "sha256": r.sha256,
        "uploaded_by": r.uploaded_by,
        "created_at": r.created_at.isoformat(),
        "url": f"/api/problems/{r.problem_id}/photos/{r.id}",
    }


PHOTO_COLUMNS = "id, problem_id, media_type, bytes, sha256, uploaded_by, created_at"


def _require_problem(conn: Connection, problem_id: int, lock: bool = False) -> None:
    found = conn.scalar(
        sa.text("SELECT id FROM problem WHERE id = :p" + (" FOR UPDATE" if lock else "")),
        {"p": problem_id},
    )
    if found is None:
        raise NotFound(f"no problem {problem_id} in your area")


def add(
    conn: Connection, user: Who, problem_id: int, data: bytes, root: Path, now: dt.datetime
) -> dict[str, Any]:
    """Check, clean and store a photo of a problem the user may see (404 otherwise)."""
    permissions.require(user, PATROL, "add photos to problems")
    _require_problem(conn, problem_id, lock=True)  # the lock orders counts of two uploads
    stored, media_type = clean(data)
    sha = hashlib.sha256(stored).hexdigest()
    relative = f"p{int(problem_id)}/{sha}"
    same = conn.execute(
        sa.text(f"SELECT {PHOTO_COLUMNS} FROM problem_photo WHERE path = :path"),
        {"path": relative},
    ).first()
    if same is not None:
        return _row(same)
    count = conn.scalar(
        sa.text("SELECT count(*) FROM problem_photo WHERE problem_id = :p"), {"p": problem_id}
    )
    if count >= MAX_PER_PROBLEM:
        raise Conflict(f"a problem has at most {MAX_PER_PROBLEM} photos",
                       key="problems.photo_count", count=MAX_PER_PROBLEM)  # fmt: skip
    _write_private(root, relative, stored)
    row = conn.execute(
        sa.text(
            "INSERT INTO problem_photo (problem_id, path, media_type, bytes, sha256, "
            f"uploaded_by, created_at) VALUES (:p, :path, :t, :n, :sha, :u, :now) "
            f"RETURNING {PHOTO_COLUMNS}"
        ),
        {"p": problem_id, "path": relative, "t": media_type, "n": len(stored), "sha": sha,
         "u": user.id, "now": now},  # fmt: skip
    ).one()
    return _row(row)


def list_photos(conn: Connection, problem_id: int) -> list[dict[str, Any]]:
    """The photos of a problem the user may see (404 otherwise), oldest first."""
    _require_problem(conn, problem_id)
    rows = conn.execute(
        sa.text(
            f"SELECT {PHOTO_COLUMNS} FROM problem_photo WHERE problem_id = :p ORDER BY id"
        ),
        {"p": problem_id},
    )
    return [_row(r) for r in rows]


def read(conn: Connection, problem_id: int, photo_id: int, root: Path) -> tuple[bytes, str]:
    """(bytes, media type) of one photo of a problem the user may see; 404 otherwise."""
    row = conn.execute(
        sa.text(
            "SELECT path, media_type FROM problem_photo WHERE id = :id AND problem_id = :p"
        ),
        {"id": photo_id, "p": problem_id},
    ).first()
    missing = NotFound(f"no photo {photo_id} of problem {problem_id} in your area")
    if row is None:
        raise missing
    base = root.resolve()
    path = (base / row.path).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise missing
    return path.read_bytes(), row.media_type


def photos_dir(var_dir: Path) -> Path:
    """Where photos are kept: ``<var_dir>/photos`` (outside anything the app serves)."""
    return var_dir / "photos"
