"""Timelines: how a 3-D scene moves in a movie.

A :class:`Timeline` holds tracks of segments (camera orbit, zoom, a sweeping slice plane, a clipping
plane, per-class opacity fades), each with an easing. :meth:`Timeline.state` gives the :class:`View` at a
time ``t`` from ``t`` alone, so any frame can be previewed and a long movie rendered in pieces. Timelines
load from and save to JSON; errors name the file and the segment.

Examples
--------
>>> tl = simple_timeline(seconds=4, orbit=360)
>>> round(tl.state(2.0).azimuth - tl.state(0.0).azimuth)
180
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InputError, ParameterError

AXES = {"x": 0, "y": 1, "z": 2}  # world axis index; the volume's (z, y, x) index is 2 - world axis


def _ease(name: str, p: float) -> float:
    p = min(1.0, max(0.0, p))
    if name == "linear":
        return p
    if name == "in":
        return p * p
    if name == "out":
        return 1.0 - (1.0 - p) ** 2
    return p * p * (3.0 - 2.0 * p)  # in_out (smoothstep)


EASINGS = ("linear", "in", "out", "in_out")
TRACKS = {  # track -> its parameters and their defaults (None: required)
    "orbit": {"degrees": 360.0, "axis": "z", "elevation": 20.0},
    "zoom": {"from": 1.0, "to": 1.5},
    "sweep": {"axis": "z", "from": 0.0, "to": 1.0},
    "clip": {"axis": "x", "from": 0.0, "to": 0.5},
    "opacity": {"class": None, "from": 1.0, "to": 0.0},
}


@dataclass
class Segment:
    """One piece of a track, from ``start`` to ``end`` seconds."""

    track: str
    start: float
    end: float
    ease: str = "in_out"
    params: dict = field(default_factory=dict)

    def progress(self, t: float) -> float:
        """Eased progress 0..1 at time t (0 before the segment, 1 after it)."""
        if self.end <= self.start:
            return 1.0 if t >= self.start else 0.0
        return _ease(self.ease, (t - self.start) / (self.end - self.start))

    def value(self, t: float) -> float:
        return self.params["from"] + (self.params["to"] - self.params["from"]) * self.progress(t)


@dataclass
class View:
    """Everything that changes over a movie, at one time."""

    azimuth: float = 0.0
    elevation: float = 20.0
    axis: str = "z"
    zoom: float = 1.0
    slices: dict = field(default_factory=dict)  # world axis -> fraction 0..1 through the volume
    clip: tuple | None = None  # (world axis, fraction): what lies below the fraction is cut away
    clip_facing: bool = False  # cut away the half nearer the camera instead, so the cut faces it
    opacity: dict = field(default_factory=dict)  # class name -> opacity factor


@dataclass
class Timeline:
    """Tracks of segments over ``seconds``; :meth:`state` is a pure function of time."""

    seconds: float
    segments: list[Segment]
    source: str | None = None

    def state(self, t: float) -> View:
        v = View()
        for s in sorted(self.segments, key=lambda s: s.start):
            if s.track == "orbit":
                if t >= s.start:
                    v.axis = s.params["axis"]
                    v.elevation = s.params["elevation"]
                v.azimuth += s.params["degrees"] * s.progress(t)
            elif t < s.start:
                continue
            elif s.track == "zoom":
                v.zoom = s.value(t)
            elif s.track == "sweep":
                if t <= s.end:  # a sweeping slice is shown while it sweeps
                    v.slices[s.params["axis"]] = s.value(t)
            elif s.track == "clip":
                v.clip = (s.params["axis"], s.value(t))
            elif s.track == "opacity":
                v.opacity[s.params["class"]] = s.value(t)
        return v

    def to_json(self) -> dict:
        return {"seconds": self.seconds,
                "tracks": [{"track": s.track, "start": s.start, "end": s.end, "ease": s.ease, **s.params}
                           for s in self.segments]}

    @classmethod
    def from_json(cls, doc, source: str | None = None) -> Timeline:
        """A timeline from its JSON form (``{"seconds": 8, "tracks": [{"track": "orbit", "start": 0,
        "end": 8, "degrees": 360}, ...]}``); errors name the file and the segment."""
        if not isinstance(doc, dict) or not isinstance(doc.get("tracks"), list):
            raise InputError('a timeline is a JSON object with a "tracks" list', source)
        segments = []
        for i, item in enumerate(doc["tracks"]):
            where = f"tracks[{i}]"
            if not isinstance(item, dict) or item.get("track") not in TRACKS:
                raise InputError(f"{where}: \"track\" must be one of {', '.join(TRACKS)}", source)
            item = dict(item)
            track = item.pop("track")
            try:
                start = float(item.pop("start", 0.0))
                end = float(item.pop("end", doc.get("seconds", start)))
            except (TypeError, ValueError):
                raise InputError(f"{where}: start and end are seconds (numbers)", source) from None
            ease = item.pop("ease", "in_out" if track != "orbit" else "linear")
            if ease not in EASINGS:
                raise InputError(f"{where}: ease must be one of {', '.join(EASINGS)}, got {ease!r}", source)
            params = {}
            for key, default in TRACKS[track].items():
                val = item.pop(key, default)
                if val is None:
                    raise InputError(f"{where}: a {track} segment needs \"{key}\"", source)
                if key in ("axis",) and val not in AXES:
                    raise InputError(f"{where}: axis must be x, y or z, got {val!r}", source)
                if key not in ("axis", "class"):
                    try:
                        val = float(val)
                    except (TypeError, ValueError):
                        raise InputError(f"{where}: {key} must be a number, got {val!r}", source) from None
                params[key] = val
            if item:
                raise InputError(f"{where}: unknown key(s) {', '.join(item)} for a {track} segment "
                                 f"(allowed: start, end, ease, {', '.join(TRACKS[track])})", source)
            if end < start or start < 0:
                raise InputError(f"{where}: needs 0 <= start <= end, got {start}..{end}", source)
            segments.append(Segment(track, start, end, ease, params))
        seconds = float(doc.get("seconds", max((s.end for s in segments), default=0.0)))
        if not seconds > 0:
            raise InputError("the timeline lasts no time: give \"seconds\" or segments that end after 0", source)
        return cls(seconds, segments, source)

    @classmethod
    def read(cls, path) -> Timeline:
        try:
            doc = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise InputError("no such timeline file", path) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"not valid JSON: {e}", path) from None
        return cls.from_json(doc, str(path))


def simple_timeline(seconds: float = 6.0, orbit: float = 360.0, elevation: float = 20.0, axis: str = "z",
                    zoom: float = 1.0, sweep: str | None = None, clip: str | None = None,
                    fade: dict | None = None) -> Timeline:
    """The common movies from plain arguments: an orbit over the whole movie, a zoom to ``zoom``, a slice
    sweeping along ``sweep``, a clipping plane along ``clip`` opening to the middle over the first half and
    holding, and opacity fades ``{class: to}`` over the second half."""
    if not seconds > 0:
        raise ParameterError(f"seconds must be positive, got {seconds}")
    segs = [Segment("orbit", 0.0, seconds, "linear", {"degrees": float(orbit), "axis": axis,
                                                       "elevation": float(elevation)})]
    if zoom != 1.0:
        segs.append(Segment("zoom", 0.0, seconds, "in_out", {"from": 1.0, "to": float(zoom)}))
    if sweep:
        segs.append(Segment("sweep", 0.0, seconds, "linear", {"axis": sweep, "from": 0.0, "to": 1.0}))
    if clip:
        segs.append(Segment("clip", 0.0, seconds / 2, "in_out", {"axis": clip, "from": 0.0, "to": 0.5}))
    for name, to in (fade or {}).items():
        segs.append(Segment("opacity", seconds / 2, seconds, "in_out", {"class": name, "from": 1.0,
                                                                          "to": float(to)}))
    return Timeline(float(seconds), segs)
