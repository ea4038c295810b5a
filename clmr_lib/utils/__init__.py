"""Small shared helpers: torch.distributed queries and a gradient-carrying all-gather."""

from clmr_lib.utils.dist import gather_with_grad, is_distributed, rank, row_counts, world_size

__all__ = ["gather_with_grad", "is_distributed", "rank", "row_counts", "world_size"]
