"""Which H.264 packets no other frame references, read from their NAL unit headers.

A picture whose slices all have ``nal_ref_idc == 0`` is never used to predict another picture
(ITU-T H.264, 7.4.1), so a decoder may drop its packet without changing any other decoded frame;
FFmpeg's own ``skip_frame=nonref`` drops the same pictures. With B-frames that are not
references (x264 ``b-pyramid=none``), every B-frame a clip does not show is such a packet.

Packets of mp4/mkv H.264 are in AVCC form: NAL units prefixed by their length in 1, 2 or 4
bytes, the size being given by the ``avcC`` extradata (``lengthSizeMinusOne``). Streams in any
other form (Annex-B start codes, no extradata) or of another codec are never skipped.
"""

from __future__ import annotations

#: NAL unit types of coded slices (non-IDR and IDR).
_SLICE_TYPES = (1, 5)


def avcc_length_size(extradata: bytes | None) -> int | None:
    """NAL length-prefix size (1, 2 or 4) from ``avcC`` extradata; None if not AVCC."""
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None
    size = (extradata[4] & 0x03) + 1
    return size if size in (1, 2, 4) else None


def is_non_reference(data: bytes | memoryview, length_size: int) -> bool:
    """True when ``data`` (one AVCC packet) holds slices and every one has ``nal_ref_idc`` 0.

    A malformed packet (a length running past the end) is reported as a reference picture, so
    it is decoded rather than skipped.
    """
    view = memoryview(data)
    end, pos, slices = len(view), 0, 0
    while pos + length_size < end:
        size = int.from_bytes(view[pos : pos + length_size], "big")
        pos += length_size
        if size == 0 or pos + size > end:
            return False
        header = view[pos]
        if header & 0x1F in _SLICE_TYPES:
            if header & 0x60:
                return False
            slices += 1
        pos += size
    return slices > 0 and pos == end
