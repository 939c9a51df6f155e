"""Where GitHub sends people to visit a deployment: a production custom domain when there is one.

A GitHub Deployment status carries an `environment_url`. For production it is the project's
custom domain once one is verified, since that is the address its users know; otherwise (and
for previews) it is the view's own `environment_url`.
"""

from __future__ import annotations

from app.deployments.lifecycle import Target
from app.deployments.views import DeploymentView
from app.tables import Domain


async def production_domain(project_id: int) -> str | None:
    """The URL of the project's production custom domain, or None.

    It must be verified, serve production (no `git_branch`), serve content (no `redirect_to`)
    and be one name (not a wildcard). Of several, the one verified first: the choice stays the
    same as more are added.
    """
    row = await (
        Domain.select(Domain.name)
        .where(
            (Domain.project == project_id)
            & Domain.verified_at.is_not_null()
            & Domain.git_branch.is_null()
            & Domain.redirect_to.is_null()
            & Domain.name.not_like("*.%")
        )
        .order_by(Domain.verified_at)
        .order_by(Domain._meta.primary_key)
        .first()
    )
    return None if row is None else f"https://{row['name']}"


async def environment_url(view: DeploymentView) -> str:
    """The URL a GitHub Deployment status of `view` names as its environment's."""
    if view.target is Target.PRODUCTION:
        return await production_domain(view.project_id) or view.environment_url
    return view.environment_url
