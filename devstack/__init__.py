"""The local stack: the task API, its queue, worker and table on one machine, emulated from template.yaml.

`devstack.resources` is light (boto3 + samcli's template reader) so that tests can build moto resources from the
template; `LocalStack` (Flask, the environments) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from devstack.resources import LocalResources, create_resources

if TYPE_CHECKING:
    from devstack.stack import LocalStack

__all__ = ["LocalResources", "LocalStack", "create_resources"]


def __getattr__(name: str) -> Any:
    if name == "LocalStack":
        from devstack.stack import LocalStack

        return LocalStack
    raise AttributeError(name)
