"""Data-parallel training and sharded cache building over several processes, on ``torch.distributed``.

Launched by torchrun, which starts one process per device and tells each its place in the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``)::

    torchrun --standalone --nproc_per_node 2 -m training train --config edge-mvr      # 2 processes, 1 machine
    torchrun --nnodes 4 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \
             -m training cache ~/kinetics --out /shared/cache                        # 32 processes, 4 machines

Without that environment (a plain ``python -m training train``) nothing here starts a process
group and every helper is the single-process identity, so single-process runs are unchanged.

The rules a data-parallel run follows, in one place:

- the process group's backend is ``nccl`` on CUDA (one GPU per process, ``cuda:LOCAL_RANK``) and
  ``gloo`` on the CPU (:func:`process_group`);
- ``train.batch_size`` is the GLOBAL batch: each of N processes takes ``batch_size / N`` clips per
  step (:func:`per_process_batch`), so a config trains with the same batch, learning rate and
  steps per epoch on one process or on N (DDP averages the gradients over processes);
- evaluation splits the clips without padding (:class:`ShardSampler`) and sums correct counts over
  processes (:func:`all_reduce_sums`), so validation top-1 is exactly the single-process value;
- batch-norm running statistics are each process's own during a step; rank 0's are copied to the
  others (:func:`broadcast_buffers`) before evaluation, so every process evaluates the model rank 0
  saves;
- each objective call is the forward of a DistributedDataParallel module (:func:`objective_steps`),
  so the gradients of whatever model method an objective calls, and of DMC-Net's discriminator in
  its own step, are averaged;
- the side-data cache is built in parts: process ``r`` of ``N`` extracts the shards ``i`` with
  ``i % N == r`` (``training.cache.build.CachePart``); rank 0 writes the cache's ``spec.json``.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgekit.errors import ConfigError

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel run. ``rank``: 0..world_size-1 over all machines;
    ``local_rank``: its index on this machine (its GPU); ``backend``: "nccl", "gloo" or "" when
    there is no process group (one process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def active(self) -> bool:
        """True when there is more than one process (collectives are needed)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True for the one process that writes files, logs and shows progress (rank 0)."""
        return self.rank == 0


SINGLE = Distributed()


def launch_environment(environ=None) -> Distributed:
    """The place torchrun gave this process (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or
    :data:`SINGLE` when none is set. Raises ConfigError for values that are not a valid placement."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return SINGLE
    try:
        rank, world, local = (int(environ.get(k, "0")) for k in ENV_KEYS)
    except ValueError:
        raise ConfigError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers, got "
                          f"{[environ.get(k) for k in ENV_KEYS]}; launch with torchrun") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local} is not a valid placement; "
                          "launch with torchrun")
    return Distributed(rank, world, local)


def backend_for(device_type: str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for the CPU."""
    return "nccl" if device_type == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(device_type: str) -> Iterator[Distributed]:
    """Join the process group torchrun set up for this process and leave it at the end.

    Yields :data:`SINGLE` (no group) when the environment describes one process. A group the
    caller already initialised is used as it is and left open. ``device_type``: "cuda" or "cpu"
    (chooses the backend). On CUDA, selects ``cuda:LOCAL_RANK`` for this process."""
    place = launch_environment()
    if not place.active:
        yield SINGLE
        return
    import torch
    import torch.distributed as dist

    backend = backend_for(device_type)
    if device_type == "cuda":
        torch.cuda.set_device(place.local_rank)
    if dist.is_initialized():
        yield Distributed(dist.get_rank(), dist.get_world_size(), place.local_rank, dist.get_backend())
        return
    dist.init_process_group(backend)
    try:
        yield Distributed(dist.get_rank(), dist.get_world_size(), place.local_rank, backend)
    finally:
        dist.destroy_process_group()


def barrier(place: Distributed) -> None:
    """Wait until every process gets here (nothing for one process)."""
    if place.active:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sums(place: Distributed, values: Sequence[float], device=None) -> list[float]:
    """Element-wise sums of ``values`` over all processes (float64; the values themselves for one
    process). ``device``: where the collective runs ("cuda" tensors for nccl; the CPU for gloo)."""
    if not place.active:
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def broadcast_buffers(place: Distributed, module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) of ``module`` to every process, in place."""
    if not place.active:
        return
    import torch.distributed as dist

    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


def per_process_batch(batch_size: int, place: Distributed) -> int:
    """Clips per step on each process: ``train.batch_size`` is the global batch, split evenly.
    Raises ConfigError when it does not divide by the number of processes."""
    if batch_size % place.world_size:
        raise ConfigError(f"train.batch_size {batch_size} is the global batch and must divide evenly over "
                          f"{place.world_size} processes; set it to a multiple of {place.world_size} "
                          f"(e.g. {place.world_size * max(batch_size // place.world_size, 1)})")
    return batch_size // place.world_size


class ShardSampler:
    """Indices ``rank, rank + N, rank + 2N, ...`` of a dataset of ``length`` items: every item on
    exactly one process, none repeated (``DistributedSampler`` pads the last round with repeated
    items, which would count some clips twice in a metric), in order. Shards may differ in length
    by one, so use it only where no collective runs per batch (evaluation)."""

    def __init__(self, length: int, place: Distributed):
        self.length, self.place = length, place

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.place.rank, self.length, self.place.world_size))

    def __len__(self) -> int:
        return max(math.ceil((self.length - self.place.rank) / self.place.world_size), 0)


def build_cache_in_parts(place: Distributed, dataset_root, out, spec, **options):
    """``training.cache.build_cache`` with its shards split over the processes: process ``r`` of
    ``N`` extracts the shards ``i % N == r`` (rank 0 also writes ``spec.json``), then all wait for
    each other. Returns the cache folder, complete, on every process. ``options``: the other
    keyword arguments of ``build_cache`` (``splits``, ``layout``, ``workers``, ``progress``...).
    Raises what ``build_cache`` raises, and EdgekitError if the cache is incomplete afterwards."""
    from edgekit.errors import EdgekitError
    from training.cache import build_cache, is_complete
    from training.cache.build import CachePart

    if not place.active:
        return build_cache(dataset_root, out, spec, **options)
    folder = build_cache(dataset_root, out, spec, part=CachePart(place.rank, place.world_size),
                         write_meta=place.is_main, **options)
    barrier(place)
    if not is_complete(folder):
        raise EdgekitError(f"the cache {folder} is incomplete after every process built its shards; run the "
                           "same command again to build the missing ones")
    return folder


@dataclass(frozen=True)
class ObjectiveSteps:
    """The objective's two calls as one training step makes them: ``generator(batch)`` is
    ``objective(model, batch, teachers)``; ``discriminator(batch)`` is
    ``objective.discriminator_step(model, batch)`` (None without a discriminator). Each returns the
    objective's ``ObjectiveResult``."""

    generator: Callable[[Mapping], Any]
    discriminator: Callable[[Mapping], Any] | None


def objective_steps(place: Distributed, model, objective, teachers: Mapping, device) -> ObjectiveSteps:
    """The objective's calls on ``model`` (a torch module on ``device``), for process ``place``.

    For one process they are the plain calls. For several, each call is the forward of a module
    wrapped in DistributedDataParallel, so that the backward pass after it averages the gradients
    of that module's parameters over the processes: the model's (``find_unused_parameters``, as
    an objective may leave a head out of its loss) in the generator's step, the discriminator's
    alone in its own step (the model is run there without gradients and is not part of it). An
    objective calls the model's own methods (``forward_with_flow``, ``forward_hints``), which a
    DDP wrapper of the bare model would not see; wrapping the call itself covers them all."""
    discriminator = getattr(objective, "discriminator", None)
    if not place.active:
        judge_once = None if discriminator is None else lambda batch: objective.discriminator_step(model, batch)
        return ObjectiveSteps(lambda batch: objective(model, batch, teachers), judge_once)
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    class GeneratorStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model  # the only module whose parameters this step trains

        def forward(self, batch):
            return objective(self.model, batch, teachers)

    class DiscriminatorStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.discriminator = discriminator  # the model is used without gradients: not a submodule

        def forward(self, batch):
            return objective.discriminator_step(model, batch)

    device_ids = [device.index] if device.type == "cuda" else None
    generator = DistributedDataParallel(GeneratorStep(), device_ids=device_ids, static_graph=True)
    judge = None
    if discriminator is not None:
        judge = DistributedDataParallel(DiscriminatorStep(), device_ids=device_ids)
    return ObjectiveSteps(generator, judge)
