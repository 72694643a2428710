from .metrics import mean, mrr_at, ndcg_at, recall_at, score
from .runner import EvalQuery, evaluate, page_key, read_queries

__all__ = ["EvalQuery", "evaluate", "mean", "mrr_at", "ndcg_at", "page_key", "read_queries",
           "recall_at", "score"]
