"""What a hostname serves (`Target`), read from its alias row in the one query the lookup runs;
or, for a custom domain that redirects, where to (`Redirect`).

Besides the deployment, it carries what the protection gate needs (whether this hostname is
protected, what its tokens bind, the project's bypass hash), so a protected request costs no
query of its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from app.deployments.lifecycle import DeploymentState
from app.preview_tokens import binding, protects
from app.tables import Alias
from builder.spec import output_prefix


@dataclass(frozen=True, slots=True)
class Target:
    """What a hostname serves: a deployment, its state, where its files are, who may see it."""

    project_id: int
    deployment_id: str
    state: DeploymentState
    prefix: str
    """Storage prefix of the deployment's files, ending with `/` (`builder.spec.output_prefix`)."""
    name: str = ""
    """The hostname this answer is for: an alias label, or a custom domain."""
    binding: str = ""
    """What the gate's tokens for this hostname bind (`app.preview_tokens.binding`)."""
    protected: bool = False
    """Only viewers with the proxy's cookie (or the bypass secret) are served."""
    bypass_hash: str | None = None
    """The project's keyed hash of its bypass secret, when it has one."""
    pruned: bool = False
    """Its files were deleted (torn down, or past retention): it answers 410 Gone."""

    COLUMNS = (
        Alias.deployment.project.as_alias("project_id"),
        Alias.deployment.as_alias("deployment_id"),
        Alias.deployment.state.as_alias("state"),
        Alias.project.slug.as_alias("slug"),
        Alias.project.protection.as_alias("protection"),
        Alias.project.bypass_hash.as_alias("bypass_hash"),
        Alias.deployment.pruned_at.as_alias("pruned_at"),
    )

    @classmethod
    def of(cls, name: str, row: dict[str, Any]) -> Target:
        project_id, deployment_id = int(row["project_id"]), str(row["deployment_id"])
        return cls(
            project_id=project_id,
            deployment_id=deployment_id,
            state=DeploymentState(row["state"]),
            prefix=output_prefix(project_id, deployment_id),
            name=name,
            binding=binding(name, project_id),
            protected=protects(str(row["protection"]), name, str(row["slug"])),
            bypass_hash=row["bypass_hash"],
            pruned=row.get("pruned_at") is not None,
        )

    def for_domain(self, domain: str) -> Target:
        """What custom domain `domain`, following this target's label, serves: the same
        deployment, protected as the label is (a production domain as production), with
        tokens of its own."""
        return dataclasses.replace(self, name=domain, binding=binding(domain, self.project_id))

    @property
    def ready(self) -> bool:
        return self.state is DeploymentState.READY and not self.pruned


@dataclass(frozen=True, slots=True)
class Redirect:
    """What a verified custom domain with `redirect_to` serves: a 308 to that domain."""

    name: str
    """The custom domain asked for."""
    to: str
    """The domain it redirects to (the path and query go along)."""
