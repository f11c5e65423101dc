"""Device mesh (axes data, fsdp, tensor) and the rules that map the model's logical axes onto it.

Every parameter axis carries a logical name (see model/llama.py). `LOGICAL_RULES` maps each name
to mesh axes; a name without a rule is an error, so a new parameter can never be silently
replicated. A dimension that does not divide evenly over its mesh axes is replicated instead, with
a warning once, since XLA cannot place uneven shards of jit arguments.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from llm2llm_jax.common.errors import UserError

log = logging.getLogger(__name__)

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")  # a batch is split over both data-parallel axes

# Ordered (logical name, mesh axes). Params: fsdp shards the embed dim, tensor shards heads/mlp/vocab.
LOGICAL_RULES: tuple = (
    ("layers", None),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("q_heads", "tensor"),
    ("kv_heads", "tensor"),
    ("mlp", "tensor"),
    ("norm", None),
    ("lora_rank", None),
    # activations
    ("act_batch", BATCH_AXES),
    ("act_length", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_mlp", "tensor"),
)


class ShardingError(UserError, ValueError):
    """A mesh or parameter that cannot be laid out as asked."""


_distributed_started = False


def maybe_initialize_distributed(coordinator: str = "", num_processes: int = 0, process_id: int = -1) -> None:
    """Join a multi-process run: explicit arguments, JAX_COORDINATOR_ADDRESS, or a multi-worker TPU VM.

    Must run before anything touches jax.devices(). A single process with none of these is left alone.
    """
    global _distributed_started
    if _distributed_started:
        return
    # JAX's preemption notifier would take SIGTERM over from common/stopping.py's handler, and a preempted
    # run would neither stop in one line nor checkpoint its fine-tune's step; this project does both itself.
    jax.config.update("jax_enable_preemption_service", False)
    if coordinator:
        jax.distributed.initialize(
            coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
        )
    elif os.environ.get("JAX_COORDINATOR_ADDRESS") or "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):
        jax.distributed.initialize()  # auto-detects its peers on TPU pods and from JAX_* env vars
    else:
        return
    _distributed_started = True


def resolve_mesh_shape(shape: Sequence[int], num_devices: int) -> tuple[int, int, int]:
    """Fill a single -1 with the devices left over; check the product equals the device count."""
    shape = [int(s) for s in shape]
    if len(shape) != 3:
        raise ShardingError(f"mesh shape must have 3 entries (data, fsdp, tensor), got {shape}")
    if shape.count(-1) > 1:
        raise ShardingError(f"mesh shape {shape}: at most one entry may be -1")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if num_devices % known:
            raise ShardingError(f"mesh shape {shape}: {num_devices} devices do not divide by {known}")
        shape[shape.index(-1)] = num_devices // known
    if math.prod(shape) != num_devices:
        raise ShardingError(
            f"mesh shape {shape} (data, fsdp, tensor) needs {math.prod(shape)} devices, "
            f"but {num_devices} are available; use -1 for one axis to take the rest"
        )
    return tuple(shape)


def make_mesh(shape: Sequence[int] = (1, -1, 1), devices=None) -> Mesh:
    devices = list(devices if devices is not None else jax.devices())
    dims = resolve_mesh_shape(shape, len(devices))
    try:
        grid = mesh_utils.create_device_mesh(dims, devices=devices)
    except Exception:  # noqa: BLE001 - CPU / odd topologies: plain row-major order is fine
        grid = np.asarray(devices).reshape(dims)
    return Mesh(grid, MESH_AXES)


def _rule_map(rules) -> dict:
    return dict(rules)


def logical_to_spec(
    names: Sequence[str | None], shape: Sequence[int], mesh: Mesh, rules=LOGICAL_RULES, what: str = "array"
) -> P:
    """PartitionSpec for one array from its logical axis names; raises on an unknown name."""
    table = _rule_map(rules)
    spec = []
    used: set = set()
    for dim, name in zip(shape, names):
        if name is None:
            spec.append(None)
            continue
        if name not in table:
            raise ShardingError(
                f"{what}: logical axis '{name}' has no partition rule; add it to LOGICAL_RULES"
            )
        axes = table[name]
        axes_tuple = () if axes is None else ((axes,) if isinstance(axes, str) else tuple(axes))
        axes_tuple = tuple(a for a in axes_tuple if a not in used and mesh.shape.get(a, 1) > 1)
        size = math.prod(mesh.shape[a] for a in axes_tuple)
        if axes_tuple and dim % size:
            log.warning(
                "%s: dimension %d (%s) does not divide over mesh axes %s (size %d); replicating it",
                what,
                dim,
                name,
                axes_tuple,
                size,
            )
            axes_tuple = ()
        used.update(axes_tuple)
        spec.append(None if not axes_tuple else (axes_tuple[0] if len(axes_tuple) == 1 else axes_tuple))
    return P(*spec)


def param_shardings(boxed_abstract: Any, mesh: Mesh, rules=LOGICAL_RULES) -> Any:
    """NamedSharding per parameter from a boxed (nn.LogicallyPartitioned) abstract param tree."""

    def one(path, leaf):
        what = "/".join(str(getattr(k, "key", k)) for k in path)
        if not isinstance(leaf, nn.LogicallyPartitioned):
            raise ShardingError(
                f"parameter {what} carries no logical axis names; wrap its initializer with "
                f"nn.with_logical_partitioning"
            )
        value = leaf.value
        return NamedSharding(mesh, logical_to_spec(leaf.names, value.shape, mesh, rules, what=what))

    return jax.tree_util.tree_map_with_path(
        one, boxed_abstract, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned)
    )


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_divisor(mesh: Mesh) -> int:
    return math.prod(mesh.shape[a] for a in BATCH_AXES)


def place(tree: Any, shardings: Any) -> Any:
    """Put host arrays onto the mesh, one leaf at a time (multi-host safe: each process fills its shards); a
    leaf already there with its sharding is kept as it is."""

    def one(x, sharding):
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(one, tree, shardings)


def barrier(name: str) -> None:
    """Wait for every process (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def broadcast_json(obj: Any) -> Any:
    """Process 0's JSON-serialisable object, on every process (no-op with one process)."""
    if jax.process_count() == 1:
        return obj

    from jax.experimental import multihost_utils

    payload = json.dumps(obj).encode("utf-8") if jax.process_index() == 0 else b""
    size = int(multihost_utils.broadcast_one_to_all(np.int32(len(payload))))
    buf = np.zeros(size, np.uint8)
    if jax.process_index() == 0:
        buf[:] = np.frombuffer(payload, np.uint8)
    buf = np.asarray(multihost_utils.broadcast_one_to_all(buf))
    return json.loads(bytes(buf).decode("utf-8"))


def any_process(flag: bool) -> bool:
    """Whether `flag` is true on any process (a collective: every process calls it at the same point)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.asarray(multihost_utils.process_allgather(np.int32(flag))).any())


def to_host(x) -> np.ndarray:
    """A jax array as numpy on this host, also when it spans processes (gathered if not replicated)."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    if x.sharding.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def replicate_inputs(mesh: Mesh, *arrays):
    """Host arrays as replicated global arrays when several processes share the mesh (else unchanged)."""
    if jax.process_count() == 1:
        return arrays
    return tuple(place(a, replicated(mesh)) for a in arrays)
