"""The "API tokens" page: each user creates (shown once), lists and revokes their own tokens."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from runs.models import ApiToken

SESSION_KEY = "ptd_new_token"
MAX_TOKENS = 100


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Label", max_length=100, help_text="What uses it, e.g. “GitLab CI of project X”."
    )


def token_list(request):
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if request.user.api_tokens.count() >= MAX_TOKENS:
            form.add_error(None, f"You already have {MAX_TOKENS} tokens: revoke some first.")
        else:
            token, raw = ApiToken.create_for(request.user, form.cleaned_data["name"])
            # Shown on the next page only (post/redirect/get), never stored in clear.
            request.session[SESSION_KEY] = {"id": token.id, "raw": raw}
            return redirect("tokens")
    new = request.session.pop(SESSION_KEY, None)
    return render(
        request,
        "runs/tokens.html",
        {
            "form": form,
            "tokens": request.user.api_tokens.all(),
            "new_token": new["raw"] if new else None,
            "new_id": new["id"] if new else None,
            "api_url": request.build_absolute_uri("/api/"),
        },
        status=400 if form.errors else 200,
    )


@require_POST
def token_revoke(request, token_id):
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    label = token.name or token.prefix
    token.delete()
    messages.success(request, f"Token {label} revoked.")
    return redirect("tokens")
