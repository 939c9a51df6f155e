"""What the API's lifespan opens and closes, held for the routes, the pages and tests
(`app.state.services`); `app.asgi` fills it in."""

from __future__ import annotations

from dataclasses import dataclass

from app.aliases import AliasAnnouncer
from app.auth.service import GitHubSignIn
from app.auth.user_tokens import UserTokens
from app.builds.service import BuildChannel
from app.deployments.service import DeploymentService
from app.domains.service import DomainService
from app.github.api import GitHubApi
from app.github.oauth_api import GitHubUsersApi
from app.logs.bus import LogBus
from app.previews.service import PreviewService
from app.projects.access import Access
from app.projects.service import ProjectService
from app.reconcile import Reconciler
from app.reporting.reporter import Reporter
from app.runners.api import BuildRunner
from app.web.projects import Dashboard
from app.webhooks.worker import DeliveryWorker


@dataclass
class Services:
    """What the lifespan opens and closes; routes get them through dependencies."""

    bus: LogBus | None = None
    announce: AliasAnnouncer | None = None
    runner: BuildRunner | None = None
    reconciler: Reconciler | None = None
    github: GitHubApi | None = None
    github_users: GitHubUsersApi | None = None
    user_tokens: UserTokens | None = None
    access: Access | None = None
    github_sign_in: GitHubSignIn | None = None
    reporter: Reporter | None = None
    deliveries: DeliveryWorker | None = None
    deployments: DeploymentService | None = None
    projects: ProjectService | None = None
    dashboard: Dashboard | None = None
    previews: PreviewService | None = None
    builds: BuildChannel | None = None
    domains: DomainService | None = None
