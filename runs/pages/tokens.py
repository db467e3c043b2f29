"""The "API tokens" page: each user creates (shown once), lists and revokes their own tokens.

A new token is shown in the answer to the POST that created it, and nowhere else: it is never
stored in clear (not in the session either), so a reload or the back button cannot show it
again. The page says so.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from runs import permissions
from runs.models import ApiToken

MAX_TOKENS = 100


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Label", max_length=100, help_text="What uses it, e.g. “GitLab CI of project X”."
    )


def token_list(request):
    form = TokenForm(request.POST or None)
    token = raw = None
    if request.method == "POST" and form.is_valid():
        if request.user.api_tokens.count() >= MAX_TOKENS:
            form.add_error(None, f"You already have {MAX_TOKENS} tokens: revoke some first.")
        else:
            token, raw = ApiToken.create_for(request.user, form.cleaned_data["name"])
            form = TokenForm()  # an empty form under the new token
    response = render(
        request,
        "runs/tokens.html",
        {
            "form": form,
            "tokens": request.user.api_tokens.all(),
            "new_token": raw,
            "new_id": token.id if token else None,
            "api_url": request.build_absolute_uri("/api/"),
        },
        status=400 if form.errors else 200,
    )
    if token is not None:  # no copy in the browser's cache or history either
        response["Cache-Control"] = "no-store"
    return response


@require_POST
def token_revoke(request, token_id):
    token = get_object_or_404(ApiToken, pk=token_id)
    if not permissions.can_manage_token(request.user, token):
        raise Http404("No such token of yours.")
    label = token.name or token.prefix
    token.delete()
    messages.success(request, f"Token {label} revoked.")
    return redirect("tokens")
