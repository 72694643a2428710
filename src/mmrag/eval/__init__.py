from .compare import compare_reports, load_report
from .metrics import mean, mrr_at, ndcg_at, recall_at, score
from .runner import EvalQuery, PageKey, evaluate, is_relevant, page_key, rank_keys, read_queries

__all__ = ["EvalQuery", "PageKey", "compare_reports", "evaluate", "is_relevant", "load_report",
           "mean", "mrr_at", "ndcg_at", "page_key", "rank_keys", "read_queries", "recall_at",
           "score"]
