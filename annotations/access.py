"""Who may see and act on a study: the one rule for the researcher pages, the research API, exports,
reports and study media (DESIGN: "Who may see what").

A study is visible to its owner and its collaborators, provided they are still active researchers, and
to superusers. Everyone else, including other researchers, gets a 404 rather than a 403: a 403 would
confirm that a study with that slug exists. A study without an owner (created before ownership existed)
is visible to superusers only; it is never "everyone's".
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse

from .models import Study
from .selectors import user_is_researcher

AnyUser = AbstractBaseUser | AnonymousUser | None


def studies_visible(*, user: AnyUser) -> QuerySet[Study]:
    """The studies this user may see (possibly none)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Study.objects.none()
    if user.is_superuser:
        return Study.objects.all()
    if not user_is_researcher(user):
        return Study.objects.none()
    ids = Study.objects.filter(Q(owner=user) | Q(collaborators=user)).values("id")
    return Study.objects.filter(id__in=ids)  # a subquery, so the M2M join cannot duplicate rows


def study_visible(*, user: AnyUser, study: Study) -> bool:
    return studies_visible(user=user).filter(pk=study.pk).exists()


def study_get_visible(*, user: AnyUser, slug: str) -> Study:
    """The study with this slug if the user may see it; Http404 otherwise (absent and forbidden look alike)."""
    study = studies_visible(user=user).filter(slug=slug).select_related("owner", "dataset").first()
    if study is None:
        raise Http404("no such study")
    return study


def study_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For the researcher's HTML pages: anonymous → login page; no access → 404; else view(request, study)."""

    @wraps(view)
    def wrapper(request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, study_get_visible(user=request.user, slug=slug), *args, **kwargs)

    return wrapper
