from django.urls import path

from . import views

urlpatterns = [
    path("workflows/", views.workflows, name="workflows"),
    path("runs/", views.runs, name="runs"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<int:run_id>/events/", views.run_events, name="run-events"),
    path("runs/<int:run_id>/result/", views.run_result, name="run-result"),
    path("runs/<int:run_id>/actions/", views.run_actions, name="run-actions"),
    path("health/", views.health, name="health"),
]
