"""High-frequency robot telemetry, vectorised with numpy one procedure at a time, streamed
as Arrow record batches of about `chunk_rows` rows (memory stays flat however many).

A procedure's samples depend only on (seed, node, procedure ordinal) and the procedure's
plan, so the output is the same whatever the chunk size. The signals:
- tool phases: the procedure is split into phases, each with one tool and a target point;
  the arm moves between targets with minimum-jerk transitions and wanders slowly around
  them (sums of low-frequency sines), plus a 9.5 Hz physiological tremor scaled by what the
  tremor compensation leaves, and sensor noise;
- grip follows the tool (grasping cycles), camera zoom and tilt drift smoothly;
- tissue force is small except for spikes (a few seconds, 8-20 N) at each complication;
- controller temperature rises towards an equilibrium with use, from a baseline that grows
  with the procedures since the last maintenance; power follows motion, grip and heat;
- an equipment fault shows before it happens: overheating ramps the temperature, a power
  supply fault adds surges, a joint encoder fault adds position jitter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

from workloads.contracts.tables.robotics import PROCEDURE_TELEMETRY, TOOLS
from workloads.robotics.fleet import TELEMETRY_STREAM, ProcedurePlan, stream_rng

DEFAULT_CHUNK_ROWS = 1 << 19  # ~75 MB of signals per chunk
ID_STRIDE = 10**7  # telemetry_id = ordinal * ID_STRIDE + sample index
US_PER_DAY = 86_400_000_000

# Tool mix by procedure category (weights over TOOLS).
_TOOL_WEIGHTS: dict[str, tuple[float, ...]] = {
    "orthopedic": (0.15, 0.0, 0.05, 0.05, 0.0, 0.0, 0.15, 0.6),
    "cardiac": (0.25, 0.3, 0.15, 0.1, 0.0, 0.1, 0.1, 0.0),
}
_SOFT_TISSUE = (0.3, 0.2, 0.15, 0.15, 0.05, 0.05, 0.1, 0.0)
_GRIP_N = np.array([4.0, 8.0, 2.0, 3.0, 12.0, 5.0, 0.5, 1.0])  # mean grip per tool
_MODEL_POWER_W = 1600.0
FLOAT_COLUMNS = [c.name for c in PROCEDURE_TELEMETRY.columns if c.type == "FLOAT"]
LAKE_COLUMNS = [c for c in PROCEDURE_TELEMETRY.column_names if c != "date"]


def samples_of(plan: ProcedurePlan, hz: float) -> int:
    return max(1, int(plan.duration_s * hz))


def total_rows(plans: Iterable[ProcedurePlan], hz: float) -> int:
    return sum(samples_of(p, hz) for p in plans)


class _Slow:
    """Slow signals (below 0.5 Hz) are computed once a second and interpolated to the
    sample times: the same curve as computing them per sample, at a fraction of the cost."""

    def __init__(self, t: np.ndarray) -> None:
        self.t = t
        self.coarse = np.arange(0.0, float(t[-1]) + 2.0, 1.0)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(np.interp(self.t, self.coarse, values), dtype=np.float64)

    def smooth(self, rng: np.random.Generator, amplitude: float, low_hz: float, high_hz: float,
               terms: int = 3) -> np.ndarray:
        """A smooth random signal: a sum of sines with random low frequencies and phases."""
        freqs = rng.uniform(low_hz, high_hz, terms)
        phases = rng.uniform(0, 2 * np.pi, terms)
        amps = amplitude * rng.uniform(0.5, 1.0, terms) / terms
        out = np.zeros_like(self.coarse)
        for f, ph, a in zip(freqs, phases, amps, strict=True):
            out += a * np.sin(2 * np.pi * f * self.coarse + ph)
        return self(out)


_NOISE_COLUMNS = 11  # x, y, z, rotation, grip, compensation, fx, fy, fz, temperature, power
_UNIT_SD = np.float32(np.sqrt(12.0))


def _noise(rng: np.random.Generator, n: int, columns: int = _NOISE_COLUMNS) -> np.ndarray:
    """Sensor noise with unit standard deviation, one column per signal: uniform
    (quantisation-like) float32 draws, several times cheaper than normals."""
    noise = rng.random((columns, n), dtype=np.float32)
    noise -= np.float32(0.5)
    noise *= _UNIT_SD
    return noise


def procedure_columns(plan: ProcedurePlan, hz: float, seed: int, node: str
                      ) -> dict[str, np.ndarray]:
    """Every telemetry column of one procedure, as numpy arrays (tool_type as tool indices)."""
    rng = stream_rng(seed, node, TELEMETRY_STREAM, plan.ordinal)
    n = samples_of(plan, hz)
    idx = np.arange(n, dtype=np.int64)
    t = idx / hz
    # -- phases: one tool and one target point each -------------------------------------
    k = int(np.clip(2 + rng.poisson(1.2 * plan.complexity), 2, 12))
    cuts = np.sort(rng.uniform(0, 1, k - 1))
    starts = np.concatenate(([0], np.floor(cuts * n).astype(np.int64)))
    weights = np.asarray(_TOOL_WEIGHTS.get(plan.category, _SOFT_TISSUE))
    tools = rng.choice(len(TOOLS), k, p=weights / weights.sum())
    targets = np.stack([rng.uniform(-150, 150, k + 1), rng.uniform(-150, 150, k + 1),
                        rng.uniform(80, 300, k + 1)])  # (axis, phase)
    phase = np.searchsorted(starts, idx, side="right") - 1
    transition = rng.uniform(3.0, 8.0) * hz  # samples to move to a phase's target
    s = np.clip((idx - starts[phase]) / transition, 0.0, 1.0)
    blend = s * s * s * (10 - 15 * s + 6 * s * s)  # minimum-jerk profile
    origin, goal = targets[:, phase], targets[:, phase + 1]
    pos = origin + (goal - origin) * blend  # (axis, sample): each axis contiguous
    slow = _Slow(t)
    compensation = float(np.clip(rng.normal(92, 4), 70, 99.5))
    tremor_mm = rng.uniform(0.5, 1.5) * (1 - compensation / 100)
    tremor_axis = rng.normal(0, 1, 3)
    tremor = np.sin(2 * np.pi * 9.5 * t + rng.uniform(0, 2 * np.pi))
    for axis in range(3):
        pos[axis] += slow.smooth(rng, 15.0, 0.01, 0.15)
        pos[axis] += (tremor_mm * tremor_axis[axis] / np.sqrt(3)) * tremor
    noise = _noise(rng, n)
    pos += 0.05 * noise[0:3]
    fault_i = None if plan.fault_at_s is None else int(plan.fault_at_s * hz)
    if plan.fault == "joint encoder fault" and fault_i is not None:
        window = np.clip((idx - (fault_i - 90 * hz)) / (90 * hz), 0, 1)  # 90 s of rising jitter
        pos += _noise(rng, n, 3) * (3.0 * window)
    # -- rotation, grip, camera ---------------------------------------------------------
    rotation = np.clip(slow.smooth(rng, 120.0, 0.005, 0.05) + 0.2 * noise[3], -180, 180)
    cycle = slow(0.5 + 0.5 * np.tanh(3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3)
                                                * slow.coarse + rng.uniform(0, 2 * np.pi))))
    grip = np.clip(_GRIP_N[tools][phase] * (0.2 + 0.8 * cycle) + 0.15 * noise[4], 0, 30)
    zoom = np.clip(3.0 + slow.smooth(rng, 4.0, 0.002, 0.02), 1.0, 10.0)
    angle = np.clip(15.0 + slow.smooth(rng, 40.0, 0.002, 0.03), -90.0, 90.0)
    # -- tissue force: small, with a spike at each complication -------------------------
    force = 0.3 * noise[6:9].astype(np.float64)  # (axis, sample)
    force[2] += 0.15 * grip
    for at in plan.complication_at_s:
        width = rng.uniform(2.0, 5.0)
        direction = rng.normal(0, 1, 3)
        direction /= np.linalg.norm(direction)
        near = slice(max(0, int((at - 4 * width) * hz)), min(n, int((at + 4 * width) * hz) + 1))
        bump = np.exp(-0.5 * ((t[near] - at) / width) ** 2) * rng.uniform(8.0, 20.0)
        force[:, near] += direction[:, None] * bump
    np.clip(force, -40, 40, out=force)
    # -- heat and power -------------------------------------------------------------------
    base = 24.0 + rng.normal(0, 0.5) + 0.05 * plan.uses_since_maintenance
    rise = 6.0 + 1.5 * plan.complexity
    temperature = slow(base + rise * (1 - np.exp(-slow.coarse / 1200.0))) + 0.1 * noise[9]
    speed = np.zeros(n)
    if n > 1:
        step = np.diff(pos, axis=1)
        speed[1:] = np.sqrt(np.einsum("ij,ij->j", step, step)) * hz  # mm/s
    power = (_MODEL_POWER_W + 1.5 * np.minimum(speed, 200) + 15 * grip
             + 8 * (temperature - base) + 10.0 * noise[10])
    if fault_i is not None and plan.fault == "controller overheating":
        temperature += 30.0 * np.clip((idx - (fault_i - 120 * hz)) / (120 * hz), 0, 1)
    if fault_i is not None and plan.fault == "power supply fault":
        surges = (idx > fault_i - 60 * hz) & (rng.random(n) < 0.2)
        power += surges * rng.uniform(500, 1500, n)
    timestamps = plan.start_us + np.round(idx * (1_000_000 / hz)).astype(np.int64)
    return {
        "telemetry_id": plan.ordinal * ID_STRIDE + idx,
        "timestamp": timestamps,
        "arm_position_x": np.clip(pos[0], -400, 400),
        "arm_position_y": np.clip(pos[1], -400, 400),
        "arm_position_z": np.clip(pos[2], 0, 500),
        "arm_rotation": rotation,
        "tool_type": tools[phase].astype(np.int8),
        "grip_pressure": grip,
        "tremor_compensation": np.clip(compensation + 0.2 * noise[5], 0, 100),
        "camera_zoom": zoom,
        "camera_angle": angle,
        "force_feedback_x": force[0],
        "force_feedback_y": force[1],
        "force_feedback_z": force[2],
        "system_temperature": np.clip(temperature, 15, 90),
        "power_consumption": np.clip(power, 0, 6000),
        "date": (timestamps // US_PER_DAY).astype(np.int32),
    }


_SCHEMA = PROCEDURE_TELEMETRY.arrow_schema()


def _procedure_batch(plan: ProcedurePlan, cols: dict[str, np.ndarray]) -> pa.RecordBatch:
    n = len(cols["telemetry_id"])
    arrays: list[pa.Array] = []
    for field in _SCHEMA:
        if field.name == "procedure_id":
            arrays.append(pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, dtype=np.int8)), pa.array([plan.procedure_id])
            ).cast(pa.string()))
        elif field.name == "tool_type":
            arrays.append(pa.DictionaryArray.from_arrays(
                pa.array(cols["tool_type"]), _TOOL_NAMES).cast(pa.string()))
        elif field.name == "timestamp":
            arrays.append(pa.array(cols["timestamp"]).cast(field.type))
        elif field.name == "date":
            arrays.append(pa.array(cols["date"]).cast(pa.date32()))
        else:
            arrays.append(pa.array(cols[field.name], field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=_SCHEMA)


_TOOL_NAMES = pa.array(TOOLS)


def telemetry_chunks(plans: Iterable[ProcedurePlan], hz: float, seed: int, node: str, *,
                     chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pa.Table]:
    """The telemetry of `plans`, in order, as tables of whole procedures of about
    `chunk_rows` rows (a procedure longer than that is a table of its own); one record
    batch per procedure, so nothing is concatenated."""
    parts: list[pa.RecordBatch] = []
    have = 0
    for plan in plans:
        batch = _procedure_batch(plan, procedure_columns(plan, hz, seed, node))
        parts.append(batch)
        have += batch.num_rows
        if have >= chunk_rows:
            yield pa.Table.from_batches(parts, schema=_SCHEMA)
            parts, have = [], 0
    if parts:
        yield pa.Table.from_batches(parts, schema=_SCHEMA)
