# A PyTorch script written for torchrun, used unchanged under pdsd-launch: env:// rendezvous over
# Gloo (MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE), one all_reduce, and the torchrun variables.
import os

import torch
import torch.distributed as dist

dist.init_process_group("gloo")  # init_method defaults to env://
rank, world = dist.get_rank(), dist.get_world_size()
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
expected = world * (world + 1) / 2
print(f"rank {rank}/{world} local {os.environ['LOCAL_RANK']}/{os.environ['LOCAL_WORLD_SIZE']} "
      f"group {os.environ['GROUP_RANK']} restart {os.environ['TORCHELASTIC_RESTART_COUNT']} "
      f"all_reduce {t.item():g} expected {expected:g}", flush=True)
assert t.item() == expected
dist.barrier()
dist.destroy_process_group()
