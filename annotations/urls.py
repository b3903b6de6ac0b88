from __future__ import annotations

from django.urls import path

from . import views

app_name = "annotations"
urlpatterns = [
    path("", views.home, name="home"),
    # Annotators (crowd links and accounts)
    path("s/<slug:slug>/join", views.join, name="join"),
    path("s/<slug:slug>/consent", views.consent, name="consent"),
    path("s/<slug:slug>/", views.next_item, name="next"),
    path("s/<slug:slug>/a/<uuid:token>/", views.item, name="item"),
    path("s/<slug:slug>/a/<uuid:token>/image", views.item_image, name="item_image"),
    path("s/<slug:slug>/finish", views.finish, name="finish"),
    path("s/<slug:slug>/done", views.done, name="done"),
    path("s/<slug:slug>/mine", views.my_ratings, name="my_ratings"),
    # Researchers
    path("studies/", views.study_list, name="study_list"),
    path("studies/new/", views.study_create_view, name="study_create"),
    path("studies/<slug:slug>/edit/", views.study_edit, name="study_edit"),
    path("studies/<slug:slug>/duplicate", views.study_duplicate_view, name="study_duplicate"),
    path("studies/<slug:slug>/manage/", views.study_manage, name="study_manage"),
    path("studies/<slug:slug>/manage/status", views.study_status, name="study_status"),
    path("studies/<slug:slug>/preview/", views.preview, name="preview"),
    path("studies/<slug:slug>/preview/item/<int:number>/", views.preview_item, name="preview_item"),
    path("studies/<slug:slug>/preview/item/<int:number>/image", views.preview_image, name="preview_image"),
    path("studies/<slug:slug>/preview/done", views.preview_done, name="preview_done"),
]
