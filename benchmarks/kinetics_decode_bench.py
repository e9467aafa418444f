"""Training-clip decode on Kinetics-like sources: loader, decode-only ceiling, encoding choices.

Profiles (videos from ``benchmarks/kinetics_sources.py``, 10 s each):

- ``k400-raw-360p`` / ``k400-raw-720p``: as YouTube serves Kinetics (640x360 and 1280x720,
  25/30 fps, keyframes every 2-5 s, CABAC, B-frame pyramid, 600 / 1800 kbit/s).
- ``archive``: today's ingest re-encode (``reencode.profile=archive``: short side 256, 30 fps,
  keyframe every 16 frames, x264 veryfast defaults) of the four raw videos.
- ``train-profile``: the training re-encode (``reencode.profile=train``) of the same videos.
- ``train-profile-320``: the same at short side 320 (bytes and speed of the larger option).

Per profile and sampling (``8x8``: T=8, tau=8, alpha=4; ``4x16``: T=4, tau=16, alpha=8; both
at 30 fps, 32 Fast frames over 64 frames), over the same windows (drawn as fractions of each
video's length):

- ``loader``: :func:`pipelines.views.train_clip`, what a loader task runs per training clip
  (random short side in [256, 320], random 224 crop, flip), one decoder thread;
  ``loader_crop_first`` the same with ``data.decode.train_view: crop_first``; ``loader_planes``
  the same with ``data.decode.train_view: planes`` (:func:`pipelines.views.train_planes`: the
  crop's 4:2:0 planes copied out, scaling and colour conversion left to the training device);
- ``loader_2_per_decode`` / ``loader_crop_first_2_per_decode``: the same with
  ``data.decode.clips_per_decode=2`` (:func:`pipelines.views.train_clips`: two training clips, each its
  own crop and flip, from one decode of the window), counted as two clips;
- ``legacy_loader``: the loader as it was before this change (FFmpeg's automatic frame
  threads, decode until the last needed frame comes out, every packet decoded, one swscale
  context per frame);
- ``decode_ceiling``: :func:`pipelines.decode.frames.decode_av_frames`, libavcodec decoding exactly
  the packets the window needs, no colour conversion, no scaling, one thread.

Rates are clips per CPU-second (process CPU time, all threads), so other load on the machine
moves them less than wall time; ``cores_per_gpu_at_250`` is 250 / the loader rate. Encoding
choices (``CHOICES``) change one setting of the archive profile, or undo one of the training
profile, and report bytes per video, luma PSNR against the encoder's input (30 fps sources),
and the 8x8 loader and ceiling rates. All rates of one run are measured round-robin, clip by
clip across every profile, path and choice, so that a shared machine's load changes them
alike and their ratios hold within the run.

    python benchmarks/kinetics_decode_bench.py [--clips 16] [--choice-clips 16] [--cache DIR]
        [--no-choices] [--out FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from dataclasses import replace

import av
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kinetics_sources import RAW_SOURCES, raw_video, reencoded  # noqa: E402

from pipelines.decode.convert import scaled_size  # noqa: E402
from pipelines.decode.frame_table import read_frame_table  # noqa: E402
from pipelines.decode.frames import decode_av_frames  # noqa: E402
from pipelines.ingest.segment import REENCODE_PROFILES  # noqa: E402
from pipelines.transforms import random_crop, random_horizontal_flip  # noqa: E402
from pipelines.views import (  # noqa: E402
    train_clip,
    train_clips,
    train_planes,
    window_indices,
    window_span,
)
from raysf.clip_spec import ClipSpec  # noqa: E402

SAMPLINGS = {
    "8x8": ClipSpec(slow_frames=8, tau=8, alpha=4, target_fps=30.0, num_val_clips=1,
                    num_test_clips=10),
    "4x16": ClipSpec(slow_frames=4, tau=16, alpha=8, target_fps=30.0, num_val_clips=1,
                     num_test_clips=10),
}  # fmt: skip
GPU_CLIPS_PER_S = 250.0
ARCHIVE, TRAIN = REENCODE_PROFILES["archive"], REENCODE_PROFILES["train"]
#: Each encoding choice measured on its own: one change from the archive profile (does it pay
#: alone?) and one change back from the training profile (does it still pay with the others?).
CHOICES = {
    "archive": (ARCHIVE, ()),
    "archive+gop32": (replace(ARCHIVE, gop=32), ()),
    "archive+gop64": (replace(ARCHIVE, gop=64), ()),
    "archive+crf26": (replace(ARCHIVE, crf=26), ()),
    "archive+no-cabac": (ARCHIVE, ("cabac=0",)),
    "archive+no-deblock": (ARCHIVE, ("no-deblock=1",)),
    "archive+tune-fastdecode": (replace(ARCHIVE, tune="fastdecode"), ()),
    "archive+nonref-bframes": (replace(ARCHIVE, bframes=3, b_pyramid=False), ()),
    "archive+no-bframes": (replace(ARCHIVE, bframes=0), ()),
    "train": (TRAIN, ()),
    "train-crf23": (replace(TRAIN, crf=23), ()),
    "train-gop16": (replace(TRAIN, gop=16), ()),
    "train-gop32": (replace(TRAIN, gop=32), ()),
    "train-b-pyramid": (replace(TRAIN, b_pyramid=True), ()),
    "train-no-tune": (replace(TRAIN, tune=None), ()),
}


def legacy_decode(record: dict, wanted: np.ndarray, short_side: int) -> list[np.ndarray]:
    """The loader's decode before this change (pipelines/decode/frames.py at e0069f1), condensed."""
    pts_table, keys = record["frame_pts"], record["keyframes"]
    k = int(np.searchsorted(keys, int(wanted[0]), side="right")) - 1
    seek = int(keys[k]) if k >= 0 else 0
    want = {int(pts_table[i]): j for j, i in enumerate(wanted)}
    out: list[np.ndarray | None] = [None] * len(wanted)
    with av.open(io.BytesIO(record["content"])) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        w, h = stream.codec_context.width, stream.codec_context.height
        size = scaled_size(w, h, short_side)
        if seek > 0:
            container.seek(int(pts_table[seek]), backward=True, any_frame=False, stream=stream)
        remaining, last = len(want), int(pts_table[int(wanted[-1])])
        for frame in container.decode(stream):
            j = want.get(frame.pts)
            if j is not None and out[j] is None:
                size_kw = {} if size == (w, h) else {"width": size[0], "height": size[1]}
                out[j] = frame.to_ndarray(format="rgb24", **size_kw)
                remaining -= 1
            if remaining == 0 or frame.pts >= last:
                break
    return out  # type: ignore[return-value]


def legacy_train_clip(record, fast, slow, spec: ClipSpec, rng) -> list[np.ndarray]:
    union = np.union1d(fast, slow)
    short = int(rng.integers(spec.short_side_range[0], spec.short_side_range[1] + 1))
    frames = np.stack(legacy_decode(record, union, short))
    clip = [frames[np.searchsorted(union, slow)], frames[np.searchsorted(union, fast)]]
    return random_horizontal_flip(random_crop(clip, spec.crop_size, rng), rng)


def make_records(contents: list[bytes]) -> list[dict]:
    records = []
    for i, content in enumerate(contents):
        table = read_frame_table(content)
        records.append(
            {
                "content": content,
                "video_id": f"v{i}",
                "frame_pts": table.pts,
                "keyframes": table.keyframes.astype(np.int64),
                "num_frames": table.num_frames,
                "fps": table.fps,
                "width": table.width,
                "height": table.height,
            }
        )
    return records


def make_jobs(records: list[dict], spec: ClipSpec, clips: int, seed: int) -> list[tuple]:
    """``clips`` windows, the same fractions of each video's length for every profile."""
    rng = np.random.default_rng(seed)
    jobs = []
    for c in range(clips):
        record = records[c % len(records)]
        span = window_span(spec, record["fps"])
        start = int(rng.random() * (max(record["num_frames"] - span, 0) + 1))
        fast, slow = window_indices(spec, start, record["num_frames"], record["fps"])
        jobs.append((record, fast, slow))
    return jobs


PATHS = {
    "loader": lambda r, f, s, spec, rng: train_clip(r, f, s, spec, rng, threads=1),
    "loader_crop_first": lambda r, f, s, spec, rng: train_clip(
        r, f, s, spec, rng, crop_first=True, threads=1
    ),
    "loader_planes": lambda r, f, s, spec, rng: train_planes(r, f, s, spec, rng, threads=1),
    "loader_2_per_decode": lambda r, f, s, spec, rng: train_clips(
        r, f, s, spec, rng, count=2, threads=1
    ),
    "loader_crop_first_2_per_decode": lambda r, f, s, spec, rng: train_clips(
        r, f, s, spec, rng, count=2, crop_first=True, threads=1
    ),
    "legacy_loader": legacy_train_clip,
    "decode_ceiling": lambda r, f, s, spec, rng: decode_av_frames(
        r["content"], np.union1d(f, s), frame_pts=r["frame_pts"], keyframes=r["keyframes"],
        threads=1,
    ),
}  # fmt: skip
#: Training clips one call of a path yields (the others: one).
CLIPS_PER_CALL = {"loader_2_per_decode": 2, "loader_crop_first_2_per_decode": 2}


def check_same_pixels(records: list[dict], spec: ClipSpec) -> None:
    """The loader and the legacy loader return the same clip for the same draws."""
    for record, fast, slow in make_jobs(records, spec, 2, seed=99):
        a = train_clip(record, fast, slow, spec, np.random.default_rng(5), threads=1)
        b = legacy_train_clip(record, fast, slow, spec, np.random.default_rng(5))
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def run_interleaved(cells: list[dict]) -> None:
    """Time every cell's path on its jobs, round-robin over the cells clip by clip, so that
    every figure of one run sees the same machine load; sets ``cell["rate"]`` (clips per
    CPU-second)."""
    rounds = max(len(c["jobs"]) for c in cells)
    for cell in cells:
        cell["cpu"], cell["rng"] = 0.0, np.random.default_rng(1)
    for k in range(rounds):
        for cell in cells:
            if k < len(cell["jobs"]):
                record, fast, slow = cell["jobs"][k]
                start = time.process_time()
                cell["fn"](record, fast, slow, cell["spec"], cell["rng"])
                cell["cpu"] += time.process_time() - start
    for cell in cells:
        clips = len(cell["jobs"]) * CLIPS_PER_CALL.get(cell["path"], 1)
        cell["rate"] = round(clips / cell["cpu"], 2)


def cells_for(label: str, records: list[dict], clips: int, paths, samplings) -> list[dict]:
    cells = []
    for sampling, spec in samplings.items():
        jobs = make_jobs(records, spec, clips, seed=0)
        for path in paths:
            cells.append(
                {"label": label, "sampling": sampling, "path": path, "fn": PATHS[path],
                 "spec": spec, "jobs": jobs}
            )  # fmt: skip
    return cells


def rates(cells: list[dict], label: str) -> dict:
    """``{path: {sampling: rate}}`` of one label's cells."""
    out: dict = {}
    for c in cells:
        if c["label"] == label:
            out.setdefault(c["path"], {})[c["sampling"]] = c["rate"]
    return out


def luma_psnr(raw: bytes, encoded: bytes, every: int = 15) -> float:
    """PSNR (dB) of the re-encode's luma against its input (the raw frames scaled by swscale
    as :func:`reencode_video` scales them), every ``every``-th frame of 30 fps sources."""
    with av.open(io.BytesIO(encoded)) as c:
        test = [f for i, f in enumerate(c.decode(video=0)) if i % every == 0]
    width, height = test[0].width, test[0].height
    with av.open(io.BytesIO(raw)) as c:
        ref = [
            f.reformat(width=width, height=height, format="yuv420p")
            for i, f in enumerate(c.decode(video=0))
            if i % every == 0
        ]
    err = []
    for a, b in zip(ref, test, strict=False):
        ya = a.to_ndarray()[:height].astype(np.float64)
        yb = b.to_ndarray()[:height].astype(np.float64)
        err.append(np.mean((ya - yb) ** 2))
    return round(float(10 * np.log10(255.0**2 / max(np.mean(err), 1e-9))), 2)


def profile_entry(contents: list[bytes], raws: list[bytes] | None, r: dict) -> dict:
    """Sizes, quality and rates of one profile (``r``: its :func:`rates`)."""
    entry = {
        "videos": len(contents),
        "size": _size(contents[0]),
        "bytes_per_video": int(np.mean([len(c) for c in contents])),
        "kbit_per_s": round(float(np.mean([len(c) for c in contents])) * 8 / 10 / 1000, 1),
    }
    if raws is not None:
        entry["psnr_y_db"] = mean_psnr(raws, contents)
    for path in PATHS:
        entry[f"{path}_clips_per_cpu_s"] = r[path]
    loader, crop, ceiling = r["loader"], r["loader_crop_first"], r["decode_ceiling"]
    planes = r["loader_planes"]
    entry["loader_vs_ceiling"] = {s: round(loader[s] / ceiling[s], 3) for s in loader}
    entry["loader_crop_first_vs_ceiling"] = {s: round(crop[s] / ceiling[s], 3) for s in crop}
    entry["loader_planes_vs_ceiling"] = {s: round(planes[s] / ceiling[s], 3) for s in planes}
    for k2, base in (
        ("loader_2_per_decode", "loader"),
        ("loader_crop_first_2_per_decode", "loader_crop_first"),
    ):
        entry[f"{k2}_vs_{base}"] = {s: round(r[k2][s] / r[base][s], 3) for s in r[base]}
    entry["cores_per_gpu_at_250"] = {s: round(GPU_CLIPS_PER_S / loader[s], 1) for s in loader}
    entry["cores_per_gpu_at_250_crop_first"] = {
        s: round(GPU_CLIPS_PER_S / crop[s], 1) for s in crop
    }
    entry["cores_per_gpu_at_250_planes"] = {
        s: round(GPU_CLIPS_PER_S / planes[s], 1) for s in planes
    }
    return entry


def _size(content: bytes) -> list[int]:
    table = read_frame_table(content)
    return [table.width, table.height]


def mean_psnr(raws: list[bytes], contents: list[bytes]) -> float:
    """Mean luma PSNR over the 30 fps sources (their re-encoded frame i is raw frame i)."""
    pairs = [(r, c) for r, c, s in zip(raws, contents, RAW_SOURCES, strict=True) if s.fps == 30]
    return round(float(np.mean([luma_psnr(r, c) for r, c in pairs])), 2)


def choice_entry(raws: list[bytes], contents: list[bytes], r: dict) -> dict:
    """Bytes, quality and 8x8 rates of one encoding choice."""
    return {
        "bytes_per_video": int(np.mean([len(c) for c in contents])),
        "psnr_y_db": mean_psnr(raws, contents),
        **{f"{path}_clips_per_cpu_s": r[path]["8x8"] for path in r},
    }


def relative_to_base(entries: dict) -> dict:
    """Adds each choice's ratios to its base (``archive+x`` to archive, ``train-x`` to train):
    bytes, ceiling and loader rates (> 1: the choice is larger / faster than its base)."""
    for name, entry in entries.items():
        base = entries["archive" if name.startswith("archive") else "train"]
        entry["vs_base"] = {
            key.removesuffix("_clips_per_cpu_s"): round(entry[key] / base[key], 3)
            for key in entry
            if key.endswith("_clips_per_cpu_s") or key == "bytes_per_video"
        }
        entry["vs_base"]["psnr_y_db"] = round(entry["psnr_y_db"] - base["psnr_y_db"], 2)
    return entries


def ratios(profiles: dict) -> dict:
    def r(a, key_a, b, key_b, s):
        return round(profiles[a][key_a][s] / profiles[b][key_b][s], 2)

    loader, legacy = "loader_clips_per_cpu_s", "legacy_loader_clips_per_cpu_s"
    crop = "loader_crop_first_clips_per_cpu_s"
    planes = "loader_planes_clips_per_cpu_s"
    out: dict = {}
    for s in SAMPLINGS:
        out.setdefault("speedup_vs_today_same_size", {})[s] = r(
            "train-profile", loader, "archive", legacy, s
        )
        out.setdefault("speedup_vs_today_same_size_crop_first", {})[s] = r(
            "train-profile", crop, "archive", legacy, s
        )
        out.setdefault("speedup_loader_only_archive", {})[s] = r(
            "archive", loader, "archive", legacy, s
        )
        out.setdefault("speedup_encoding_only_same_loader", {})[s] = r(
            "train-profile", loader, "archive", loader, s
        )
        out.setdefault("speedup_train_profile_vs_raw", {})[s] = r(
            "train-profile", loader, "k400-raw-360p", loader, s
        )
        out.setdefault("speedup_train_profile_vs_raw_crop_first", {})[s] = r(
            "train-profile", crop, "k400-raw-360p", crop, s
        )
        out.setdefault("speedup_vs_today_same_size_planes", {})[s] = r(
            "train-profile", planes, "archive", legacy, s
        )
        out.setdefault("speedup_train_profile_vs_raw_planes", {})[s] = r(
            "train-profile", planes, "k400-raw-360p", planes, s
        )
        out.setdefault("speedup_train_profile_vs_raw_legacy_loader", {})[s] = r(
            "train-profile", loader, "k400-raw-360p", legacy, s
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=16, help="clips per profile and sampling")
    parser.add_argument("--choice-clips", type=int, default=16, help="clips per encoding choice")
    parser.add_argument("--cache", default=None, help="folder keeping the generated videos")
    parser.add_argument("--no-choices", action="store_true", help="skip the encoding choices")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    wall0 = time.perf_counter()
    raws = [raw_video(s, args.cache) for s in RAW_SOURCES]
    contents = {
        "k400-raw-360p": raws[:2],
        "k400-raw-720p": raws[2:],
        "archive": [reencoded(r, ARCHIVE, cache=args.cache) for r in raws],
        "train-profile": [reencoded(r, TRAIN, cache=args.cache) for r in raws],
        "train-profile-320": [reencoded(r, TRAIN, short_side=320, cache=args.cache) for r in raws],
    }
    choices = {} if args.no_choices else {
        name: [reencoded(r, settings, extra_params=extra, cache=args.cache) for r in raws]
        for name, (settings, extra) in CHOICES.items()
    }  # fmt: skip
    generate_s = round(time.perf_counter() - wall0, 1)
    check_same_pixels(make_records(contents["archive"][:1]), SAMPLINGS["8x8"])
    load0, cells = os.getloadavg(), []
    for name, videos in contents.items():
        clips = max(4, args.clips // 2) if name == "k400-raw-720p" else args.clips
        cells += cells_for(name, make_records(videos), clips, list(PATHS), SAMPLINGS)
    choice_paths = ["loader", "loader_crop_first", "loader_planes", "decode_ceiling"]
    for name, videos in choices.items():
        cells += cells_for(
            f"choice:{name}", make_records(videos), args.choice_clips, choice_paths,
            {"8x8": SAMPLINGS["8x8"]},
        )  # fmt: skip
    run_interleaved(cells)
    profiles = {
        name: profile_entry(videos, None if name.startswith("k400") else raws, rates(cells, name))
        for name, videos in contents.items()
    }
    result = {
        "setup": {
            "sources": [s.name for s in RAW_SOURCES],
            "clips_per_profile": args.clips,
            "clips_k400_raw_720p": max(4, args.clips // 2),
            "clips_per_choice": args.choice_clips,
            "gpu_clips_per_s": GPU_CLIPS_PER_S,
            "cpus": os.cpu_count(),
            "loadavg_start": [round(v, 2) for v in load0],
            "loadavg_end": [round(v, 2) for v in os.getloadavg()],
            "train_profile": TRAIN.__dict__,
            "archive_profile": ARCHIVE.__dict__,
            "generate_s": generate_s,
            "wall_s": round(time.perf_counter() - wall0, 1),
        },
        "profiles": profiles,
        **ratios(profiles),
        "targets": {
            "speedup_vs_today_same_size_8x8": ">= 1.6",
            "speedup_train_profile_vs_raw": ">= 3",
            "loader_vs_ceiling": ">= 0.8 on every profile",
        },
    }
    if choices:
        result["encoding_choices_8x8"] = relative_to_base(
            {
                name: choice_entry(raws, videos, rates(cells, f"choice:{name}"))
                for name, videos in choices.items()
            }
        )
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
