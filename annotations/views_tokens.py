"""The researcher's own API tokens: list, create (the key shown once, on the response to the POST),
revoke. Tokens act for their user, so each user manages their own; superusers also revoke in the admin."""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from annotations.models import ApiToken
from annotations.selectors import user_is_researcher
from annotations.services.tokens import MAX_DAYS, ApiTokenInvalid, api_token_create, api_token_revoke


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="To tell tokens apart, e.g. 'notebook'.")
    days = forms.IntegerField(min_value=1, max_value=MAX_DAYS, initial=settings.API_TOKEN_DAYS,
                              help_text="Days until the token stops working.")


def _researcher(request: HttpRequest) -> None:
    if not user_is_researcher(request.user):
        raise PermissionDenied("API tokens are for researchers")


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    _researcher(request)
    new_key = None
    form = ApiTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            _, new_key = api_token_create(user=request.user, name=form.cleaned_data["name"],
                                          days=form.cleaned_data["days"])
            form = ApiTokenForm()
        except ApiTokenInvalid as exc:
            form.add_error(None, str(exc))
    tokens = ApiToken.objects.filter(user=request.user)
    response = render(request, "annotations/tokens.html", {"form": form, "tokens": tokens, "new_key": new_key,
                                                                "now": timezone.now()},
                      status=400 if form.errors else 200)
    response["Cache-Control"] = "no-store"  # the page may carry a key: never into a browser or proxy cache
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    _researcher(request)
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)  # someone else's token: 404
    if api_token_revoke(token=token):
        messages.success(request, f"Token {token.prefix}… revoked: it no longer works.")
    return redirect("research:token_list")
