#!/usr/bin/env python3
"""Crops an 8-bit RGBA PNG (what the app's `screenshot` writes) to a rectangle, with the standard
library only, so scripts/dev/screenshots.sh can show one part of the window in docs/.

    crop_png.py IN.png OUT.png X Y WIDTH HEIGHT
"""
import struct
import sys
import zlib

BPP = 4  # bytes per pixel: 8-bit RGBA


def chunks(data):
    at = 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        yield kind, data[at + 8 : at + 8 + length]
        at += 12 + length


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def read_rows(data):
    header = idat = b""
    for kind, body in chunks(data):
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if (depth, color, interlace) != (8, 6, 0):
        sys.exit("crop_png.py reads 8-bit RGBA PNGs without interlacing only")
    raw = zlib.decompress(idat)
    stride = width * BPP
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = row[i - BPP] if i >= BPP else 0
            up = previous[i]
            corner = previous[i - BPP] if i >= BPP else 0
            predictor = (0, left, up, (left + up) // 2, paeth(left, up, corner))[kind]
            row[i] = (row[i] + predictor) & 0xFF
        rows.append(row)
        previous = row
    return width, height, rows


def write_png(path, width, rows):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    # Each row filtered by "Sub": the flat colours of a UI become runs of zeros.
    raw = bytearray()
    for row in rows:
        raw.append(1)
        raw += bytes((row[i] - (row[i - BPP] if i >= BPP else 0)) & 0xFF for i in range(len(row)))
    header = struct.pack(">IIBBBBB", width, len(rows), 8, 6, 0, 0, 0)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(raw), 9)))
        out.write(chunk(b"IEND", b""))


def main():
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    source, target = sys.argv[1], sys.argv[2]
    x, y, width, height = (int(v) for v in sys.argv[3:])
    with open(source, "rb") as f:
        full_width, full_height, rows = read_rows(f.read())
    if x < 0 or y < 0 or x + width > full_width or y + height > full_height:
        sys.exit(f"the rectangle is not inside the {full_width}x{full_height} image")
    write_png(target, width, [row[x * BPP : (x + width) * BPP] for row in rows[y : y + height]])


if __name__ == "__main__":
    main()
