"""One compute thread for the small, many-step work of probes (torch and BLAS alike)."""
from __future__ import annotations

from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits


@contextmanager
def single_threaded():
    """Run the enclosed code with one torch thread and one BLAS/OpenMP thread, then restore both.

    Probes run thousands of tiny matrix products; on a busy 2-core machine, two threads per
    product wait on each other far longer than they compute (logistic regression on 1,680 x 256
    embeddings: 80 s with the default threads under load, 2 s with one). One thread also makes
    floating-point results independent of the core count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)
