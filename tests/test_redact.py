"""Credentials never reach output: passwords in URIs and secret parameters are masked."""

import pytest

from forecaster.runtime.redact import mask_credentials


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "API request to http://alice:s3cret@mlflow:5000/api/2.0/mlflow/x failed",
            "API request to http://alice:***@mlflow:5000/api/2.0/mlflow/x failed",
        ),
        ("postgresql+psycopg://u:p@ss@db:5432/mlflow", "postgresql+psycopg://u:***@db:5432/mlflow"),
        ("https://h/x?user=a&password=hunter2&x=1", "https://h/x?user=a&password=***&x=1"),
        ("host=db user=x password=abc dbname=y", "host=db user=x password=*** dbname=y"),
        ("token=abc", "token=***"),
    ],
)
def test_passwords_in_uris_and_parameters_are_masked(text, expected):
    assert mask_credentials(text) == expected


@pytest.mark.parametrize(
    "text",
    ["models:/fcm-lstm@champion", "sqlite:////tmp/a@b/mlflow.db", "http://user@host/x", "no secrets here"],
)
def test_text_without_credentials_is_unchanged(text):
    assert mask_credentials(text) == text
