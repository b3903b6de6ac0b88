"""Datasets, samples and everything computed from them.

Every computed row has a natural unique key (docs/architecture.md), so a
re-run or a redelivered task upserts instead of duplicating:
  VAEstimate  (sample, source, model_sha256)
  Generation  (va_estimate, config, prompt)          -- prompt rows are versions
  Similarity  (generation, reference_index, embedder_family, embedder_model)
  Embedding   (text_sha256, embedder_family, embedder_model)
"""
from __future__ import annotations

from django.conf import settings
from django.db import models

BASIC_LABELS = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
EMOTIC_LABELS = [
    "Affection", "Anger", "Annoyance", "Anticipation", "Aversion", "Confidence", "Disapproval",
    "Disconnection", "Disquietment", "Doubt/Confusion", "Embarrassment", "Engagement", "Esteem",
    "Excitement", "Fatigue", "Fear", "Happiness", "Pain", "Peace", "Pleasure", "Sadness",
    "Sensitivity", "Suffering", "Surprise", "Sympathy", "Yearning",
]


class Dataset(models.Model):
    class Format(models.TextChoices):
        FOLDER = "folder", "Folder per class"
        EMOTIC = "emotic", "Emotic"
        MANIFEST = "manifest", "CSV/JSONL manifest"

    name = models.SlugField(max_length=100, unique=True)
    format = models.CharField(max_length=16, choices=Format.choices)
    source_path = models.CharField(max_length=1000, blank=True)
    label_set = models.JSONField(default=list, help_text="Allowed labels, in display order.")
    multilabel = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Sample(models.Model):
    """One image (and, for Emotic, one annotated person in it)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="samples")
    external_id = models.CharField(max_length=500, help_text="Stable key within the dataset (path, row id).")
    image = models.FileField(upload_to="samples/", max_length=300)
    image_sha256 = models.CharField(max_length=64, db_index=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    body_box = models.JSONField(null=True, blank=True, help_text="[x, y, w, h] person box (Emotic).")
    labels = models.JSONField(default=list)
    gt_valence = models.FloatField(null=True, blank=True, help_text="Ground truth in [-1, 1].")
    gt_arousal = models.FloatField(null=True, blank=True)
    gt_dominance = models.FloatField(null=True, blank=True)
    references = models.JSONField(default=list, help_text="Human reference descriptions.")
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "external_id"], name="sample_unique_per_dataset"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name}:{self.external_id}"


class VAEstimate(models.Model):
    class Source(models.TextChoices):
        FACECHANNEL = "facechannel", "FaceChannel"
        EXPRESSION = "expression", "Derived from expression classifier"
        DATASET = "dataset", "Dataset ground truth"

    class Status(models.TextChoices):
        OK = "ok", "OK"
        NO_FACE = "no_face", "No face found"
        ERROR = "error", "Error"

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="va_estimates")
    source = models.CharField(max_length=16, choices=Source.choices)
    model_sha256 = models.CharField(
        max_length=64, help_text="sha256 of the weights file; 'dataset' for ground truth."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OK)
    valence = models.FloatField(null=True, blank=True)
    arousal = models.FloatField(null=True, blank=True)
    detector = models.CharField(max_length=40, blank=True)
    face_box = models.JSONField(null=True, blank=True, help_text="[x, y, w, h] of the chosen face.")
    face_score = models.FloatField(null=True, blank=True)
    face_count = models.PositiveIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True, help_text="All boxes, class probabilities, choice.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sample_id", "source"]
        constraints = [
            models.UniqueConstraint(fields=["sample", "source", "model_sha256"], name="va_unique_per_model"),
        ]

    def __str__(self) -> str:
        return f"{self.sample} {self.source} V={self.valence} A={self.arousal}"


class PromptTemplate(models.Model):
    class Task(models.TextChoices):
        CATEGORIZE = "categorize", "Categorize"
        DESCRIBE = "describe", "Describe"

    class VAFormat(models.TextChoices):
        NUMBERS = "numbers", "Numbers"
        WORDS = "words", "Words"

    task = models.CharField(max_length=12, choices=Task.choices)
    name = models.SlugField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    text = models.TextField(help_text="Placeholders: {valence} {arousal} {labels}")
    system_text = models.TextField(blank=True)
    va_format = models.CharField(max_length=8, choices=VAFormat.choices, default=VAFormat.NUMBERS)
    multilabel = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["task", "name", "version"], name="prompt_unique_version"),
        ]

    def __str__(self) -> str:
        return f"{self.task}/{self.name} v{self.version}"


class LLMConfig(models.Model):
    class Backend(models.TextChoices):
        OPENAI = "openai", "OpenAI / OpenAI-compatible"
        OLLAMA = "ollama", "Ollama"
        GGUF = "gguf", "Local GGUF (llama-cpp-python)"
        LEXICON = "lexicon", "Lexicon baseline (no LLM)"

    name = models.SlugField(max_length=100, unique=True)
    backend = models.CharField(max_length=10, choices=Backend.choices)
    model = models.CharField(max_length=300, blank=True, help_text="Model name, or GGUF path (blank: GGUF_MODEL).")
    base_url = models.CharField(max_length=500, blank=True)
    api_key_env = models.CharField(
        max_length=100, blank=True, default="OPENAI_API_KEY", help_text="Environment variable holding the key."
    )
    temperature = models.FloatField(default=0.0)
    max_tokens = models.PositiveIntegerField(default=128)
    rate_limit_per_minute = models.FloatField(default=0, help_text="0 = unlimited.")
    timeout_seconds = models.FloatField(default=60)
    max_retries = models.PositiveIntegerField(default=4)
    seed = models.IntegerField(null=True, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "LLM config"

    def __str__(self) -> str:
        return f"{self.name} ({self.backend})"


class Generation(models.Model):
    class Status(models.TextChoices):
        OK = "ok", "OK"
        UNPARSEABLE = "unparseable", "Unparseable"
        FLAGGED = "flagged", "Flagged (empty/refusal)"
        ERROR = "error", "Error"

    va_estimate = models.ForeignKey(VAEstimate, on_delete=models.CASCADE, related_name="generations")
    config = models.ForeignKey(LLMConfig, on_delete=models.PROTECT, related_name="generations")
    prompt = models.ForeignKey(PromptTemplate, on_delete=models.PROTECT, related_name="generations")
    task = models.CharField(max_length=12, choices=PromptTemplate.Task.choices)
    prompt_text = models.TextField(blank=True, help_text="The rendered prompt that was sent.")
    raw_text = models.TextField(blank=True)
    text = models.TextField(blank=True, help_text="Cleaned description (describe task).")
    labels = models.JSONField(default=list, blank=True, help_text="Parsed labels (categorize task).")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OK)
    flag_reason = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["va_estimate", "config", "prompt"], name="generation_unique"),
        ]

    def __str__(self) -> str:
        return f"gen {self.pk} {self.config.name} {self.task}"


class Embedding(models.Model):
    """Cache: each distinct text is encoded once per embedder."""

    text_sha256 = models.CharField(max_length=64)
    embedder_family = models.CharField(max_length=12)
    embedder_model = models.CharField(max_length=300)
    dim = models.PositiveIntegerField()
    vector = models.BinaryField(help_text="float32 little-endian")
    oov_rate = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["text_sha256", "embedder_family", "embedder_model"], name="embedding_unique"
            ),
        ]


class Similarity(models.Model):
    class Family(models.TextChoices):
        WORD = "word", "Word vectors (Word2Vec/GloVe)"
        BERT = "bert", "BERT (mean pooling)"
        SENTENCE = "sentence", "Sentence-transformers"

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="similarities")
    reference_index = models.PositiveIntegerField()
    embedder_family = models.CharField(max_length=12, choices=Family.choices)
    embedder_model = models.CharField(max_length=300, help_text="Checkpoint that produced the score.")
    cosine = models.FloatField(null=True, blank=True)
    oov_rate = models.FloatField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "similarities"
        constraints = [
            models.UniqueConstraint(
                fields=["generation", "reference_index", "embedder_family", "embedder_model"],
                name="similarity_unique",
            ),
        ]


class Batch(models.Model):
    """Long work is a row: the web reads this, never Celery result state."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Stage(models.TextChoices):
        VA = "va", "VA extraction"
        GENERATE = "generate", "LLM generation"
        SIMILARITY = "similarity", "Similarity"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="batches")
    stages = models.JSONField(default=list, help_text="Ordered subset of va, generate, similarity.")
    va_source = models.CharField(max_length=16, choices=VAEstimate.Source.choices, default="expression")
    configs = models.ManyToManyField(LLMConfig, blank=True, related_name="batches")
    prompts = models.ManyToManyField(PromptTemplate, blank=True, related_name="batches")
    embedders = models.JSONField(default=list, blank=True, help_text="Subset of word, bert, sentence.")
    chunk_size = models.PositiveIntegerField(default=16)
    plan = models.JSONField(
        default=dict, blank=True,
        help_text="Per stage, when planned: items planned, items reused from earlier runs, why nothing was planned.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    current_stage = models.CharField(max_length=12, blank=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return f"batch {self.pk} {self.dataset.name} {','.join(self.stages)}"


class BatchChunk(models.Model):
    """One Celery message's worth of work; the unit the reaper re-queues and retry re-sends."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="chunks")
    stage = models.CharField(max_length=12, choices=Batch.Stage.choices)
    index = models.PositiveIntegerField()
    key = models.CharField(max_length=200, help_text="stage:params:index, unique within the batch.")
    item_ids = models.JSONField(default=list, help_text="Sample ids (va) or VAEstimate/Generation ids.")
    params = models.JSONField(default=dict, blank=True, help_text="config_id, prompt_id, embedder, source…")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=dict, blank=True, help_text="{item_id: error text}")
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch_id", "stage", "index"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "key"], name="chunk_unique"),
        ]
