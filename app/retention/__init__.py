"""Retention and teardown: previews of closed pull requests, deleted branches and idle ones torn
down; deployments past their kind's age pruned; storage nobody references swept. `pass_.py` is
the reconcile loop's part; `teardown.py` what tearing one down does."""
