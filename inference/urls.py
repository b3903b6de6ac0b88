from __future__ import annotations

from django.urls import path

from . import views

app_name = "inference"
urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("batches/<int:pk>/", views.batch_detail, name="batch_detail"),
    path("batches/<int:pk>/status", views.batch_status, name="batch_status"),
    path("batches/<int:pk>/cancel", views.batch_cancel_view, name="batch_cancel"),
    path("batches/<int:pk>/retry", views.batch_retry_view, name="batch_retry"),
]
