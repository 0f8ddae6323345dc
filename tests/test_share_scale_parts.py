"""The real parts of the scale-out tests start and require authentication: PostgreSQL
(password over TCP) and SeaweedFS S3 (signed requests)."""

from __future__ import annotations

import psycopg
import pytest
from botocore.exceptions import ClientError


def test_postgres_requires_the_password(pg_cluster):
    with psycopg.connect(pg_cluster.admin_conninfo(), autocommit=True) as con:
        assert con.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"host=127.0.0.1 port={pg_cluster.port} user=ferry dbname=postgres"
                        " password=wrong")


def test_seaweedfs_s3_requires_a_signature(seaweed):
    import boto3

    bucket = seaweed.new_bucket()
    seaweed.client().put_object(Bucket=bucket, Key="k", Body=b"data")
    bad = boto3.client("s3", endpoint_url=seaweed.endpoint, aws_access_key_id=seaweed.access_key,
                       aws_secret_access_key="not-the-secret", region_name="us-east-1")
    with pytest.raises(ClientError):
        bad.get_object(Bucket=bucket, Key="k")
