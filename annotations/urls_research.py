"""Researcher-facing routes: reports, exports, the token JSON API (owned by the reports work)."""
from __future__ import annotations

from django.urls import path

from . import views_research as v
from . import views_tokens

app_name = "research"
urlpatterns = [
    path("studies/<slug:slug>/reports/", v.report_list, name="report_list"),
    path("studies/<slug:slug>/reports/build", v.report_build, name="report_build"),
    path("studies/<slug:slug>/reports/<int:version>/", v.report_detail, name="report_detail"),
    path("studies/<slug:slug>/reports/<int:version>/report.<str:fmt>", v.report_download, name="report_download"),
    path("studies/<slug:slug>/exports/ratings.csv", v.export_ratings, name="export_ratings"),
    path("studies/<slug:slug>/exports/items.csv", v.export_items, name="export_items"),
    path("studies/<slug:slug>/exports/choices.csv", v.export_choices, name="export_choices"),
    path("studies/<slug:slug>/exports/scores.csv", v.export_scores, name="export_scores"),
    path("tokens/", views_tokens.token_list, name="token_list"),
    path("tokens/<int:pk>/revoke", views_tokens.token_revoke, name="token_revoke"),
    path("studies/<slug:slug>/exports/ratings.<str:fmt>", v.export_ratings, name="export_ratings_as"),
    path("studies/<slug:slug>/exports/items.<str:fmt>", v.export_items, name="export_items_as"),
    path("studies/<slug:slug>/exports/payment.csv", v.export_payment, name="export_payment"),
    path("studies/<slug:slug>/participants/export", v.participant_export_view, name="participant_export"),
    path("studies/<slug:slug>/participants/erase", v.participant_erase_view, name="participant_erase"),
    path("api/studies/<slug:slug>/ratings", v.api_ratings, name="api_ratings"),
    path("api/studies/<slug:slug>/items", v.api_items, name="api_items"),
    path("api/studies/<slug:slug>/choices", v.api_choices, name="api_choices"),
    path("api/studies/<slug:slug>/scores", v.api_scores, name="api_scores"),
    path("api/studies/<slug:slug>/reports/latest", v.api_report, name="api_report_latest"),
    path("api/studies/<slug:slug>/reports/<int:version>", v.api_report, name="api_report"),
]
