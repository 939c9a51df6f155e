"""Moved to `tests/support/github_fake.py`; kept only for `tests/test_github_client.py`.

Delete this file when that module's import is pointed at `tests.support.github_fake`.
"""

from tests.support.github_fake import APP_ID as APP_ID
from tests.support.github_fake import WEBHOOK_SECRET as WEBHOOK_SECRET
from tests.support.github_fake import FakeGitHubApi as FakeGitHubApi
from tests.support.github_shapes import Call as Call
from tests.support.github_shapes import app_private_key as app_private_key
