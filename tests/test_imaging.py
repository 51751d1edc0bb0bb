"""Picture adjustments on real decoded frames (vcam/data/demo.mp4): what each ONVIF imaging
setting does to the Y/U/V planes, that neutral settings cost nothing, that decoder buffers are
never written through, that masks stay masks, and that the pipeline stage follows the store."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

import vcam
from vcam.config import Config
from vcam.imaging import ImagingStage, adjust_picture
from vcam.media.types import Box, MaskedFrame, Verdict
from vcam.media_settings import ImagingSettings, MediaSettings, MediaSettingsStore
from vcam.privacy.masks import apply_masks, mask_full_frame, plane_view

DEMO = Path(vcam.__file__).parent / "data" / "demo.mp4"
NEUTRAL = ImagingSettings()


def demo_frames(count: int) -> Iterator[av.VideoFrame]:
    with av.open(str(DEMO)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= count:
                return
            yield frame


def demo_frame(index: int = 30) -> av.VideoFrame:
    """A real decoded frame (yuv420p, decoder-owned buffers) from the middle of the GOP."""
    *_, frame = demo_frames(index + 1)
    assert frame.format.name == "yuv420p"
    return frame


def planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies of the Y, U, V planes (padding skipped)."""
    y, u, v = (plane_view(p).copy() for p in frame.planes)
    return y, u, v


def adjusted(**changes: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return planes(adjust_picture(demo_frame(), dataclasses.replace(NEUTRAL, **changes)))


def test_neutral_settings_return_the_same_frame_untouched() -> None:
    frame = demo_frame()
    before = [bytes(p) for p in frame.planes]
    assert adjust_picture(frame, NEUTRAL) is frame
    assert [bytes(p) for p in frame.planes] == before


@pytest.mark.parametrize(("brightness", "sign"), [(90.0, 1), (10.0, -1)])
def test_brightness_moves_the_mean_luma(brightness: float, sign: int) -> None:
    y0, u0, _ = planes(demo_frame())
    y, u, _ = adjusted(brightness=brightness)
    shift = float(y.mean()) - float(y0.mean())
    assert sign * shift > 40  # 40 steps * 2.2 codes = 88, less what clips at 0 or 255
    assert np.array_equal(u, u0)  # colour untouched


@pytest.mark.parametrize(("contrast", "ratio"), [(80.0, 1.6), (20.0, 0.4)])
def test_contrast_scales_the_luma_spread(contrast: float, ratio: float) -> None:
    y0, _, _ = planes(demo_frame())
    y, _, _ = adjusted(contrast=contrast)
    got = float(y.std()) / float(y0.std())
    assert got == pytest.approx(ratio, rel=0.1)  # clipping at 0/255 only trims the top end
    assert abs(float(y.mean()) - float(y0.mean())) < 0.15 * float(y0.std())  # pivots, no shift


def test_saturation_zero_removes_colour_and_keeps_luma() -> None:
    y0, u0, v0 = planes(demo_frame())
    assert min(np.abs(c.astype(int) - 128).max() for c in (u0, v0)) > 5  # colour to remove
    y, u, v = adjusted(saturation=0.0)
    assert np.abs(u.astype(int) - 128).max() <= 1
    assert np.abs(v.astype(int) - 128).max() <= 1
    assert np.array_equal(y, y0)


def test_saturation_up_spreads_chroma_around_grey() -> None:
    _, u0, v0 = planes(demo_frame())
    _, u, v = adjusted(saturation=100.0)
    for before, after in ((u0, u), (v0, v)):
        spread0 = np.abs(before.astype(int) - 128).mean()
        assert np.abs(after.astype(int) - 128).mean() == pytest.approx(2 * spread0, rel=0.1)


def test_decoder_reference_frames_are_never_written_through() -> None:
    """Brightening a frame the decoder still references must not leak into later frames."""
    clean = [planes(f)[0] for f in demo_frames(12)]
    later = []
    for i, frame in enumerate(demo_frames(12)):
        if i == 0:
            adjust_picture(frame, ImagingSettings(brightness=100.0))
        else:
            later.append(planes(frame)[0])
    assert all(np.array_equal(a, b) for a, b in zip(clean[1:], later, strict=True))


def test_the_frame_keeps_its_timing_and_other_formats_are_converted() -> None:
    frame = demo_frame()
    pts, time_base = frame.pts, frame.time_base
    out = adjust_picture(frame, ImagingSettings(contrast=70.0))
    assert (out.pts, out.time_base) == (pts, time_base)
    rgb = frame.to_ndarray(format="rgb24")
    converted = adjust_picture(av.VideoFrame.from_ndarray(rgb, format="rgb24"), NEUTRAL)
    assert converted.format.name == "rgb24"  # neutral: not even converted
    brighter = adjust_picture(
        av.VideoFrame.from_ndarray(rgb, format="rgb24"), ImagingSettings(brightness=80.0)
    )
    assert brighter.format.name == "yuv420p"
    assert planes(brighter)[0].mean() > planes(frame.reformat(format="yuv420p"))[0].mean() + 30


@pytest.mark.parametrize(
    "settings",
    [
        ImagingSettings(brightness=100.0, contrast=100.0, saturation=100.0),
        ImagingSettings(brightness=0.0, contrast=0.0, saturation=0.0),
        ImagingSettings(brightness=70.0, contrast=100.0, saturation=0.0),
    ],
)
def test_masks_stay_masks(settings: ImagingSettings) -> None:
    """A lookup table maps a flat patch to a flat patch: no setting can bring back detail."""
    frame = apply_masks(demo_frame(), [Box(100, 80, 300, 260)], "solid")
    y, u, v = planes(adjust_picture(frame, settings))
    assert np.ptp(y[80:260, 100:300]) == 0
    assert np.ptp(u[40:130, 50:150]) == 0 and np.ptp(v[40:130, 50:150]) == 0
    full = planes(adjust_picture(mask_full_frame(demo_frame()), settings))
    assert all(np.ptp(p) == 0 for p in full)


def masked(frame: av.VideoFrame, index: int = 7) -> MaskedFrame:
    return MaskedFrame(frame, index, 280_000, Verdict(index, (), (), False))


def test_the_stage_follows_the_store_live() -> None:
    store = MediaSettingsStore(MediaSettings.from_config(Config()))
    stage = ImagingStage(store)
    first = masked(demo_frame())
    assert stage.apply(first) is first  # neutral: passed on as it is
    y0 = planes(demo_frame())[0]

    store.change(lambda s: dataclasses.replace(s, imaging=ImagingSettings(brightness=85.0)))
    out = stage.apply(masked(demo_frame()))
    assert (out.index, out.pts_us) == (7, 280_000)
    assert planes(out.frame)[0].mean() > y0.mean() + 40

    store.change(lambda s: dataclasses.replace(s, imaging=ImagingSettings()))
    again = masked(demo_frame())
    assert stage.apply(again) is again
    assert np.array_equal(planes(again.frame)[0], y0)
