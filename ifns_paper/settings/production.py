"""Production settings: requires SECRET_KEY and ALLOWED_HOSTS; DEBUG must be off.

``manage.py check --deploy`` passes with no warnings under these settings.
"""

import os

from django.core.exceptions import ImproperlyConfigured

from ifns_paper.env import env_bool, env_int

os.environ.setdefault("DEBUG", "0")

from ifns_paper.settings.base import *  # noqa: E402,F403
from ifns_paper.settings.base import DEBUG, SECRET_KEY  # noqa: E402

if DEBUG:
    raise ImproperlyConfigured("DEBUG: must be 0 with ifns_paper.settings.production")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured("SECRET_KEY: use at least 50 characters with 5 distinct ones")
if "ALLOWED_HOSTS" not in os.environ:
    raise ImproperlyConfigured("ALLOWED_HOSTS: must be set with ifns_paper.settings.production")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
STATIC_ROOT = BASE_DIR / "staticfiles"  # noqa: F405 - filled by `manage.py collectstatic`
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
