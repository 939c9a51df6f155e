"""The retention settings: Vercel's defaults, days with fractions, 0, and clear refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.settings_parsing import EnvReader
from app.settings_parts import SettingsError
from app.settings_retention import RetentionSettings, parse_retention


def test_the_defaults_are_vercels() -> None:
    assert parse_retention(EnvReader({})) == RetentionSettings()
    assert RetentionSettings().ttl_after_close == timedelta(days=7)
    assert RetentionSettings().production == timedelta(days=365)


@pytest.mark.parametrize(
    ("raw", "says"),
    [("soon", "must be a number of days, not 'soon'"), ("-1", "between 0 and 36500")],
)
def test_a_bad_value_is_refused_by_name(raw: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_retention(EnvReader({"SCALEMESH_RETENTION_ERRORED_DAYS": raw}))

    assert "SCALEMESH_RETENTION_ERRORED_DAYS" in str(caught.value)
    assert says in str(caught.value)
