"""Checks of an uploaded data file made before pandas parses it: its type by suffix, text
that really is text, and an XLSX workbook that is a sane zip archive with safe XML.

An XLSX is a zip of XML parts, so a small upload can expand into gigabytes (a zip bomb) or
hold an XML entity expansion (the "billion laughs"). Both are refused from the zip's
directory and the head of each XML part, in bounded memory, before openpyxl opens it; and
openpyxl must parse with defusedxml, so whatever gets past these checks still cannot
expand an entity.
"""

from __future__ import annotations

import re
import struct
import zipfile
from pathlib import Path

from flowscope.errors import FlowscopeError

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
TABLE_SUFFIXES = (*TEXT_SUFFIXES, ".xlsx")
# An XLSX workbook of real data has tens of parts; thousands mean something else.
MAX_ZIP_MEMBERS = 1000
# The zip's central directory is read whole by zipfile: this bounds what that costs.
MAX_ZIP_DIRECTORY_BYTES = 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 2 * 1024**3
UNCOMPRESSED_PER_UPLOAD_BYTE = 20
# Spreadsheet XML compresses about 10 to 50 times; zeros compress about 1000 times.
MAX_COMPRESSION_RATIO = 200
# Small parts may compress well for harmless reasons (a run of empty cells).
RATIO_CHECKED_FROM_BYTES = 1024 * 1024
# The prolog of an XML part (where a DTD would be) must end within this many bytes.
XML_HEAD_BYTES = 64 * 1024
_SNIFF_BYTES = 64 * 1024
_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"GIF8": "a GIF image",
    b"\xff\xd8\xff": "a JPEG image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a zip archive (an XLSX workbook? name it .xlsx)",
    b"\x1f\x8b": "a gzip archive",
    b"\xd0\xcf\x11\xe0": "an old Excel (.xls) or Office file (save it as .xlsx)",
    b"SQLite format 3": "an SQLite database",
    b"PAR1": "a Parquet file",
}
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_XML_PARTS = (".xml", ".rels", ".vml")
_ELEMENT_START = re.compile(r"<[A-Za-z_]")


def check_table_file(path: Path, filename: str, max_upload_bytes: int) -> None:
    """Refuse ``path`` (uploaded as ``filename``) unless it can safely be handed to
    :func:`flowscope.modeling.data.read_table`; each refusal is a 400 naming the file and
    the problem."""
    suffix = Path(filename).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        hint = " (save it as .xlsx)" if suffix in (".xls", ".ods", ".xlsm") else ""
        raise FlowscopeError(
            f"{filename}: files of type {suffix or '(no extension)'!r} are not accepted{hint}; "
            "upload a .csv, .tsv, .txt or .xlsx file"
        )
    if path.stat().st_size == 0:
        raise FlowscopeError(f"{filename} is empty")
    if suffix == ".xlsx":
        check_xlsx(path, filename, max_upload_bytes)
    else:
        check_text(path, filename)


def check_text(path: Path, filename: str) -> None:
    """A CSV must be text: UTF-8, or a single-byte encoding such as Latin-1 without the
    control bytes binary files are full of."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            raise FlowscopeError(f"{filename} is not text: it is {kind}")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FlowscopeError(f"{filename} is UTF-16 text; save it as UTF-8 (CSV UTF-8)")
    try:
        head.decode("utf-8")
        return
    except UnicodeDecodeError as exc:
        cut_at_end = exc.start >= len(head) - 4 and len(head) == _SNIFF_BYTES
        if cut_at_end:  # a character split by the end of the sample, not a bad byte
            return
    controls = len(_CONTROL.findall(head))
    if b"\x00" in head or controls > len(head) // 100:
        raise FlowscopeError(
            f"{filename} is not text: it does not decode as UTF-8 and holds binary bytes; "
            "upload a CSV saved as UTF-8"
        )


def check_xlsx(path: Path, filename: str, max_upload_bytes: int) -> None:
    """An XLSX must be a zip archive with few members, a bounded total and per-member
    expansion, and XML parts without a document type declaration; openpyxl must be
    parsing with defusedxml."""
    with path.open("rb") as handle:
        if handle.read(4) != b"PK\x03\x04":
            raise FlowscopeError(
                f"{filename} is not an Excel workbook: an .xlsx file is a zip archive"
            )
    directory = _central_directory_size(path)
    if directory is None:
        raise FlowscopeError(f"{filename} is not an Excel workbook: its zip directory is missing")
    if directory > MAX_ZIP_DIRECTORY_BYTES:
        raise FlowscopeError(
            f"{filename} is refused: its zip directory ({directory:,} bytes) lists far more "
            f"parts than a workbook has (at most {MAX_ZIP_MEMBERS})"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            _check_sizes(members, filename, max_upload_bytes)
            _require_defused_xml()
            for member in members:
                if member.filename.lower().endswith(_XML_PARTS):
                    _check_xml_head(archive, member, filename)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise FlowscopeError(f"{filename} is not a readable Excel workbook: {exc}") from None


def _central_directory_size(path: Path) -> int | None:
    """The size the zip's end record declares for its central directory (zip64 aware), read
    from the file's tail only."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        tail_start = max(0, size - (22 + 65535))
        handle.seek(tail_start)
        tail = handle.read()
        end = tail.rfind(b"PK\x05\x06")
        if end < 0 or len(tail) - end < 22:
            return None
        directory_size: int = struct.unpack("<L", tail[end + 12 : end + 16])[0]
        locator = end - 20
        if (
            directory_size == 0xFFFFFFFF
            and locator >= 0
            and tail[locator:].startswith(b"PK\x06\x07")
        ):
            record_at = struct.unpack("<Q", tail[locator + 8 : locator + 16])[0]
            handle.seek(record_at)
            record = handle.read(56)
            if len(record) < 56 or not record.startswith(b"PK\x06\x06"):
                return None
            directory_size = struct.unpack("<Q", record[40:48])[0]
        return directory_size


def _check_sizes(members: list[zipfile.ZipInfo], filename: str, max_upload_bytes: int) -> None:
    if len(members) > MAX_ZIP_MEMBERS:
        raise FlowscopeError(
            f"{filename} is refused: it holds {len(members):,} parts, more than a workbook "
            f"has (at most {MAX_ZIP_MEMBERS:,})"
        )
    limit = min(MAX_UNCOMPRESSED_BYTES, UNCOMPRESSED_PER_UPLOAD_BYTE * max_upload_bytes)
    total = sum(member.file_size for member in members)
    if total > limit:
        raise FlowscopeError(
            f"{filename} is refused: it would expand to {total:,} bytes, more than the "
            f"limit of {limit:,} (a zip bomb?)"
        )
    for member in members:
        if member.file_size < RATIO_CHECKED_FROM_BYTES:
            continue
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > MAX_COMPRESSION_RATIO:
            raise FlowscopeError(
                f"{filename} is refused: its part {member.filename!r} expands {ratio:,.0f} "
                f"times (at most {MAX_COMPRESSION_RATIO}; a zip bomb?)"
            )


def _check_xml_head(archive: zipfile.ZipFile, member: zipfile.ZipInfo, filename: str) -> None:
    """A document type declaration can only stand before the first element; a workbook
    never needs one, and one is how an entity expansion starts."""
    with archive.open(member) as part:
        head = part.read(XML_HEAD_BYTES)
    encoding = "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8"
    text = head.decode(encoding, errors="replace")
    first_element = _ELEMENT_START.search(text)
    prolog = text if first_element is None else text[: first_element.start()]
    if "<!DOCTYPE" in prolog or "<!ENTITY" in prolog:
        raise FlowscopeError(
            f"{filename} is refused: its part {member.filename!r} declares a document type "
            "(<!DOCTYPE>), which workbooks never need and XML entity expansion relies on"
        )
    if first_element is None and len(head) == XML_HEAD_BYTES:
        raise FlowscopeError(
            f"{filename} is refused: its part {member.filename!r} has no element in its "
            f"first {XML_HEAD_BYTES:,} bytes"
        )


def _require_defused_xml() -> None:
    """openpyxl parses with defusedxml when it is installed, unless OPENPYXL_DEFUSEDXML
    turns that off; lxml, when openpyxl picks it, is given a parser that resolves no
    entities. Refuse to parse a workbook otherwise."""
    from openpyxl.xml import functions

    defused = functions.iterparse.__module__.startswith("defusedxml") and (
        functions.LXML or getattr(functions.fromstring, "__module__", "").startswith("defusedxml")
    )
    if not defused:
        raise FlowscopeError(
            "XLSX uploads are turned off: openpyxl is not parsing with defusedxml "
            "(install defusedxml and leave OPENPYXL_DEFUSEDXML unset)",
            status=500,
        )
