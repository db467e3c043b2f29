from django.urls import path

from runs import tokens, trends, views

urlpatterns = [
    path("", views.home, name="home"),
    path("suites/", views.suite_list, name="suites"),
    path("suites/new/", views.suite_edit, name="suite_new"),
    path("suites/<str:name>/", views.suite_detail, name="suite"),
    path("suites/<str:name>/edit/", views.suite_edit, name="suite_edit"),
    path("runs/", views.run_list, name="runs"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("tokens/", tokens.token_list, name="tokens"),
    path("tokens/<int:token_id>/revoke/", tokens.token_revoke, name="token_revoke"),
    path("trends/", trends.trends_page, name="trends"),
    path("trends/<str:name>/data/", trends.trends_data, name="trends_data"),
]
