"""Run under ``mpiexec -n 2`` with ``raise``, ``die`` or ``hang``: rank 1 fails at step 3 of DDP
training, while rank 0 waits for it in the gradient reduction. The whole job must end, with a non-zero
exit (a hang through the 2-second timeout given here)."""
import os
import sys
import time

import numpy as np

import from_scratch as fs
import from_scratch.distributed as dist
from from_scratch import functional as F
from from_scratch import nn
from from_scratch.optim import SGD

dist.init_process_group(timeout=2.0)
model = dist.DistributedDataParallel(nn.Linear(4, 2))
optimizer = SGD(model.parameters(), lr=0.1)
x, y = fs.Tensor(np.ones((3, 4), dtype=np.float32)), np.zeros((3, 2), dtype=np.float32)
for step in range(1000):
    if step == 3 and dist.get_rank() == 1:
        if sys.argv[1] == "raise":
            raise RuntimeError("injected failure at step 3")
        if sys.argv[1] == "hang":
            time.sleep(600)
        os._exit(7)  # dies without a word, as a killed process does
    optimizer.zero_grad()
    F.mse_loss(model(x), y).backward()
    optimizer.step()
print("rank", dist.get_rank(), "finished: the failure did not stop it", flush=True)
