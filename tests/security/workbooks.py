"""Hostile XLSX workbooks, built in memory: a real workbook with one part swapped for a zip
bomb, a lying zip directory or an XML entity expansion.

A zip bomb's part is a real deflate stream: one block of zeros compressed with a full flush
(which resets the compressor, so every further block compresses to the same bytes) repeated,
so a 3 GB part costs a few megabytes and no time to build. The zip around it is written by
hand because :mod:`zipfile` compresses what it is given.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

_BLOCK = 1024 * 1024
SHEET = "xl/worksheets/sheet1.xml"


def plain_workbook() -> dict[str, bytes]:
    """A small, sound workbook's parts by name: a header and twenty rows."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["a", "b", "label"])
    for row in range(20):
        sheet.append([row, row * 2.5, "yes" if row % 2 else "no"])
    out = io.BytesIO()
    book.save(out)
    with zipfile.ZipFile(out) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _deflated_zeros(size: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``size`` zero bytes (a multiple of 1 MiB) and its CRC-32."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b"\0" * _BLOCK) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc = 0
    zeros = b"\0" * _BLOCK
    for _ in range(size // _BLOCK):
        crc = zlib.crc32(zeros, crc)
    return block * (size // _BLOCK) + end, crc


def _deflated(data: bytes) -> tuple[bytes, int]:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(), zlib.crc32(data)


def build_zip(parts: dict[str, tuple[bytes, int, int]]) -> bytes:
    """A zip of ``{name: (deflated bytes, crc, declared size)}``, written by hand so that a
    part's declared size may be anything."""
    out = io.BytesIO()
    directory = io.BytesIO()
    for name, (data, crc, size) in parts.items():
        encoded = name.encode()
        offset = out.tell()
        fields = (20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded), 0)
        out.write(b"PK\x03\x04" + struct.pack("<HHHHHLLLHH", *fields) + encoded + data)
        central = (20, 20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded), 0, 0, 0, 0, 0)
        directory.write(
            b"PK\x01\x02" + struct.pack("<HHHHHHLLLHHHHHLL", *central, offset) + encoded
        )
    start = out.tell()
    listing = directory.getvalue()
    out.write(listing)
    count = len(parts)
    out.write(b"PK\x05\x06" + struct.pack("<HHHHLLH", 0, 0, count, count, len(listing), start, 0))
    return out.getvalue()


def workbook_with(sheet: tuple[bytes, int, int] | None = None, **parts: bytes) -> bytes:
    """The plain workbook with its sheet replaced by ``sheet`` (deflated, crc, declared
    size) and any part replaced or added by ``parts`` (``name=xml``; ``/`` as ``__``)."""
    contents = plain_workbook()
    contents.update({name.replace("__", "/"): xml for name, xml in parts.items()})
    packed = {name: (*_deflated(data), len(data)) for name, data in contents.items()}
    if sheet is not None:
        packed[SHEET] = sheet
    return build_zip(packed)


def zip_bomb(size: int) -> bytes:
    """A workbook whose sheet inflates to ``size`` bytes of zeros."""
    data, crc = _deflated_zeros(size)
    return workbook_with((data, crc, size))


def lying_directory(size: int) -> bytes:
    """A workbook whose sheet inflates to ``size`` bytes but whose directory says 1 KiB."""
    data, crc = _deflated_zeros(size)
    return workbook_with((data, crc, 1024))


LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    + ']>\n<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row>'
    "</sheetData></worksheet>"
)


def billion_laughs() -> bytes:
    return workbook_with(**{SHEET.replace("/", "__"): LAUGHS.encode()})


def external_entity(path: str) -> bytes:
    xml = (
        f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file://{path}">]>\n'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&xxe;</t></is></c></row>'
        "</sheetData></worksheet>"
    )
    return workbook_with(**{SHEET.replace("/", "__"): xml.encode()})


def laughs_after_a_long_comment() -> bytes:
    """The entity declarations behind 100 KB of comment: past the head a quick check reads."""
    padded = LAUGHS.replace("<!DOCTYPE", "<!--" + "x" * 100_000 + "-->\n<!DOCTYPE", 1)
    return workbook_with(**{SHEET.replace("/", "__"): padded.encode()})


def laughs_in_an_unnamed_part() -> bytes:
    """The sheet stored as ``sheet1.bin`` (its relationship says so): a check by file
    suffix does not read it, the parser still does."""
    contents = plain_workbook()
    rels = "xl/_rels/workbook.xml.rels"
    contents[rels] = contents[rels].replace(b"worksheets/sheet1.xml", b"worksheets/sheet1.bin")
    types = "[Content_Types].xml"
    contents[types] = contents[types].replace(
        b'<Override PartName="/xl/worksheets/sheet1.xml"',
        b'<Override PartName="/xl/worksheets/sheet1.bin"',
    )
    del contents[SHEET]
    contents["xl/worksheets/sheet1.bin"] = LAUGHS.encode()
    return build_zip({name: (*_deflated(data), len(data)) for name, data in contents.items()})
