"""How the student's arrays are written with orbax: trees of weights and optimizer moments, uncompressed.

orbax compresses every array with zstd by default. Trained float32 weights and Adam moments barely compress
(about a tenth smaller), and on a small host the compression takes seconds of CPU per checkpoint, taken from
the fine-tune running beside it. Arrays written compressed by earlier versions restore all the same: each
array's metadata names its codec.
"""

from __future__ import annotations

from collections.abc import Sequence


def manager(
    directory: str, array_items: Sequence[str] | None = None, json_items: Sequence[str] = (), **options
):
    """An orbax CheckpointManager for `directory` whose steps hold the named trees of arrays (written
    uncompressed) and JSON items, or with `array_items` None one unnamed tree of arrays; `options` go to
    CheckpointManagerOptions."""
    import orbax.checkpoint as ocp

    def arrays():
        return ocp.PyTreeCheckpointHandler(use_compression=False)

    if array_items is None:
        handlers = arrays()
    else:
        handlers = {name: arrays() for name in array_items}
        handlers |= {name: ocp.JsonCheckpointHandler() for name in json_items}
    return ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(**options), item_handlers=handlers
    )


def save(tree):
    """The orbax save argument for one tree of arrays."""
    import orbax.checkpoint as ocp

    return ocp.args.PyTreeSave(tree)


def restore(target):
    """The orbax restore argument for one tree of arrays shaped like `target`: abstract arrays carrying their
    shardings restore onto the devices, numpy arrays to the host."""
    import orbax.checkpoint as ocp

    return ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target)
    )
