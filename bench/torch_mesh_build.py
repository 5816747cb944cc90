#!/usr/bin/env python3
"""PyTorch's side of the gloo mesh-build comparison (docs/PERFORMANCE.md, "Mesh build: PyTorch").

One process of a torchrun-style launch (RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT from the
environment; bench/torch_mesh_build.sh starts 8 with scripts/launch.sh) joins the gloo world
(init_process_group, not timed) and then, REPS times, builds NeMo AutoModel's mesh as its
FSDP2 manager does: init_device_mesh over (pp, dp_replicate, dp_shard, cp, tp) and the three
flattens dp, dp_shard_cp and dp_cp (at world 8 with tp 2, cp 2: 36 process groups). Each
repetition's time is the slowest rank's (a max all_reduce over the world, outside the timing).
Once, outside the timing, a sum over every flattened group checks that the groups are real.
Rank 0 prints one JSON line:
  {"impl": "torch", "torch": "2.15.0", "world": 8, "tp": 2, "cp": 2, "reps": 5,
   "median_ms": ..., "min_ms": ..., "process_groups": 36}

  RANK=0 WORLD_SIZE=8 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 bench/torch_mesh_build.py --reps 5

Exits 77 (printing "SKIP: ...") when torch cannot be imported, so that a driver can skip visibly.
"""
import argparse
import json
import os
import statistics
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tp", type=int, default=2)
    parser.add_argument("--cp", type=int, default=2)
    parser.add_argument("--pp", type=int, default=1)
    parser.add_argument("--dp-replicate", type=int, default=1)
    args = parser.parse_args()
    try:
        import torch
        import torch.distributed as dist
        from torch.distributed.device_mesh import init_device_mesh
    except Exception as error:  # ImportError, or a wheel whose libraries are missing
        print(f"SKIP: torch is not importable by {sys.executable}: {error}", file=sys.stderr)
        return 77
    if not dist.is_gloo_available():
        print("SKIP: this torch has no gloo backend", file=sys.stderr)
        return 77

    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    dp_shard = world // (args.pp * args.dp_replicate * args.cp * args.tp)
    if dp_shard * args.pp * args.dp_replicate * args.cp * args.tp != world:
        print(f"torch_mesh_build: world {world} is not divisible by pp*dp_replicate*cp*tp",
              file=sys.stderr)
        return 2
    dist.init_process_group("gloo", rank=rank, world_size=world)
    shape = (args.pp, args.dp_replicate, dp_shard, args.cp, args.tp)
    names = ("pp", "dp_replicate", "dp_shard", "cp", "tp")
    # The groups PyTorch makes: one per group of every dimension, then one per group of each
    # flattened dimension (NeMo's dp, dp_shard_cp, dp_cp).
    groups = sum(world // n for n in shape) + world // (args.dp_replicate * dp_shard) + \
        world // (dp_shard * args.cp) + world // (args.dp_replicate * dp_shard * args.cp)

    def build():
        mesh = init_device_mesh("cpu", shape, mesh_dim_names=names)
        mesh[("dp_replicate", "dp_shard")]._flatten(mesh_dim_name="dp")
        mesh[("dp_shard", "cp")]._flatten(mesh_dim_name="dp_shard_cp")
        mesh[("dp_replicate", "dp_shard", "cp")]._flatten(mesh_dim_name="dp_cp")
        return mesh

    times = []
    mesh = None
    for _ in range(args.reps):
        dist.barrier()
        start = time.perf_counter()
        mesh = build()
        mine = torch.tensor([time.perf_counter() - start], dtype=torch.float64)
        dist.all_reduce(mine, op=dist.ReduceOp.MAX)
        times.append(mine.item())

    # The flattened groups are real: a sum over each equals its size.
    for name, size in (("dp", args.dp_replicate * dp_shard), ("dp_shard_cp", dp_shard * args.cp),
                       ("dp_cp", args.dp_replicate * dp_shard * args.cp)):
        one = torch.ones(1)
        dist.all_reduce(one, group=mesh[name].get_group())
        if int(one.item()) != size:
            print(f"torch_mesh_build: sum over '{name}' is {one.item()}, expected {size}",
                  file=sys.stderr)
            return 1
    if rank == 0:
        print(json.dumps({"impl": "torch", "torch": torch.__version__, "world": world,
                          "tp": args.tp, "cp": args.cp, "reps": args.reps,
                          "median_ms": statistics.median(times) * 1e3,
                          "min_ms": min(times) * 1e3, "process_groups": groups}), flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
