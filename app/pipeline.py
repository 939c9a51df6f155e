"""What requests and webhook handlers need of the reconcile loop (`app.reconcile.Reconciler`)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable  # Litestar checks injected values against their type
class Pipeline(Protocol):
    def wake(self) -> None:
        """Look for work now rather than at the next interval."""

    async def finish(self, deployment_id: str) -> None:
        """Wrap up a deployment that reached a final state: stop its build, close its log."""
