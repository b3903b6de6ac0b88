"""API tokens: store a SHA-256 of the key instead of the key, plus an expiry and revocation.

Existing keys keep working: each is hashed in place (then the plain column is dropped), and gets the
default lifetime from now.
"""
from __future__ import annotations

import hashlib
from datetime import timedelta

from django.db import migrations, models
from django.utils import timezone


def hash_existing_keys(apps, schema_editor) -> None:
    ApiToken = apps.get_model("annotations", "ApiToken")
    expires = timezone.now() + timedelta(days=90)
    for token in ApiToken.objects.all():
        token.key_hash = hashlib.sha256(token.key.encode()).hexdigest()
        token.prefix = token.key[:8]
        token.expires_at = expires
        token.save(update_fields=["key_hash", "prefix", "expires_at"])


class Migration(migrations.Migration):
    dependencies = [("annotations", "0003_comparative_units")]

    operations = [
        migrations.AddField("apitoken", "key_hash", models.CharField(max_length=64, null=True, editable=False)),
        migrations.AddField("apitoken", "prefix", models.CharField(max_length=12, default="", editable=False)),
        migrations.AddField("apitoken", "expires_at", models.DateTimeField(null=True)),
        migrations.AddField("apitoken", "revoked_at", models.DateTimeField(null=True, blank=True)),
        migrations.RunPython(hash_existing_keys, migrations.RunPython.noop),
        migrations.RemoveField("apitoken", "key"),
        migrations.AlterField("apitoken", "key_hash",
                              models.CharField(max_length=64, unique=True, editable=False)),
        migrations.AlterField("apitoken", "prefix", models.CharField(max_length=12, editable=False)),
        migrations.AlterField("apitoken", "expires_at", models.DateTimeField()),
        migrations.AlterModelOptions("apitoken", {"ordering": ["-created_at"]}),
    ]
