from django.urls import path

from . import views

urlpatterns = [
    path("workflows/", views.workflows, name="workflows"),
    path("lessons/", views.lessons_list, name="lessons"),
    path("runs/", views.runs, name="runs"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<int:run_id>/events/", views.run_events, name="run-events"),
    path("runs/<int:run_id>/summary.json", views.run_summary_download, name="run-summary-download"),
    path("runs/<int:run_id>/events.ndjson", views.run_events_ndjson, name="run-events-ndjson"),
    path("runs/<int:run_id>/events.csv", views.run_events_csv, name="run-events-csv"),
    path("runs/<int:run_id>/result/", views.run_result, name="run-result"),
    path("runs/<int:run_id>/actions/", views.run_actions, name="run-actions"),
    path("health/", views.health, name="health"),
]
